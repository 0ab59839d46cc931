"""Mixtures: the reference's string syntax and the typed config mean the same thing; a string is parsed, never run;
each epoch draws each source's share; the bucket sampler keeps a batch in one resolution and view count, is
deterministic per epoch, and shards whole batches across processes; a loader over a mixture yields mixed batches."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import pytest

from tasks.errors import OptionsError, UsageError
from tasks.options import build
from tasks.training.data.buckets import (
    RESOLUTIONS_512,
    BucketBatchSampler,
    bucket_probabilities,
    set_loader_epoch,
    training_loader,
)
from tasks.training.data.errors import MixtureError
from tasks.training.data.mixture import build_mixture, parse_mixture
from tasks.training.data.options import BedlamSource, MixtureOptions

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"
BUCKETS = ", ".join(f"({w}, {h})" for w, h in RESOLUTIONS_512)
REFERENCE = (f"4000 @ BEDLAM_Multi(allow_repeat=True, split='train', ROOT='/data/bedlam', aug_crop=16, "
             f"resolution=[{BUCKETS}], transform=SeqColorJitter, num_views=4, n_corres=0) "
             f"+ 1000 @ Labels(ROOT='/data/labels/v1', resolution=[{BUCKETS}], transform=SeqColorJitter, "
             f"aug_crop=16, allow_repeat=True, num_views=4, people='valid')")


def test_the_string_and_the_typed_config_agree():
    typed = build(MixtureOptions, {"sources": [
        {"source": "bedlam", "root": "/data/bedlam", "samples": 4000},  # the typed defaults are the real run's
        {"source": "labels", "root": "/data/labels/v1", "samples": 1000},
    ]})
    assert parse_mixture(REFERENCE) == typed
    # what a string leaves out takes the reference constructor's defaults, not the real run's
    plain = parse_mixture("BEDLAM_Multi(split='train', ROOT='x', resolution=(512, 288), num_views=4, seed=9)")
    assert plain.sources[0] == BedlamSource(root="x", resolution=((512, 288),), seed=9, aug_crop=0,
                                            color_jitter=False, allow_repeat=False)


@pytest.mark.parametrize(("text", "message"), [
    ("4000 @ Foo(ROOT='x')", "unknown source Foo"),
    ("BEDLAM_Multi(ROOT=__import__('os').system('touch PWNED'), resolution=64)", "is not a literal"),
    ("__import__('os').system('touch PWNED')", "expected 'N @ Source"),
    ("__import__('os')", "unknown source __import__"),
    ("BEDLAM_Multi(ROOT='x', resolution=64, bogus=1)", "unknown argument bogus"),
    ("BEDLAM_Multi(ROOT='x', resolution=64, n_corres=8)", "n_corres=8 is not supported"),
    ("BEDLAM_Multi(ROOT='x', resolution=64, transform=ColorJitter)", "transform must be ImgNorm or SeqColorJitter"),
    ("2.5 @ BEDLAM_Multi(ROOT='x', resolution=64)", "count before @ must be an integer"),
    ("3 * BEDLAM_Multi(ROOT='x', resolution=64)", "expected 'N @ Source"),
    ("BEDLAM_Multi(ROOT='x')", "missing resolution"),
    ("BEDLAM_Multi(ROOT='x', resolution=64, num_views=${num_views})", "cannot read the mixture"),
    ("BEDLAM_Multi(ROOT='x', resolution=64, num_views=1)", "num_views: must be greater than or equal to 2"),
])
def test_bad_strings_are_one_line_errors_and_nothing_runs(text, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MixtureError, match=message) as err:
        parse_mixture(text)
    assert isinstance(err.value, UsageError) and "\n" not in str(err.value) and not (tmp_path / "PWNED").exists()


def test_sources_of_a_mixture_need_the_same_shapes():
    with pytest.raises(OptionsError, match="same resolution list and num_views"):
        parse_mixture("BEDLAM_Multi(ROOT='a', resolution=64) + Labels(ROOT='b', resolution=(64, 48))")


def test_each_epoch_draws_each_sources_share(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(PACK / "bedlam", other)  # a second source: the same frames under another root
    common = {"resolution": [[32, 32]], "num_views": 4, "seed": 0, "allow_repeat": False}
    mix = build_mixture([{"source": "bedlam", "root": str(PACK / "bedlam"), "samples": 25, **common},
                         {"source": "bedlam", "root": str(other), "samples": 4, **common}])
    assert len(mix) == 29 and len(mix.parts[0][0]) == 10
    counts = collections.Counter(mix.locate(i) for i in range(29))
    assert sorted(collections.Counter(local for (part, local) in counts.elements() if part == 0).values()) == \
        [2] * 5 + [3] * 5  # 25 of 10: every sample twice, half of them three times
    assert len({local for part, local in counts if part == 1}) == 4  # 4 of 10: subsampled, no repeats
    first = [mix.locate(i) for i in range(29)]
    mix.set_epoch(1)
    assert [mix.locate(i) for i in range(29)] != first
    mix.set_epoch(0)
    assert [mix.locate(i) for i in range(29)] == first
    view = mix[(26, 0, 4)][0]
    assert view["instance"].startswith(str(other)) and {"has_depth", "has_msk", "pseudo"} <= set(view)


def test_the_sampler_keeps_batches_in_one_bucket_and_is_deterministic():
    sampler = BucketBatchSampler(4000, 8, len(RESOLUTIONS_512), 4)
    sampler.set_epoch(3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 500
    assert all(len({(ar, v) for _, ar, v in b}) == 1 and len(b) == 8 for b in batches)
    assert sorted(i for b in batches for i, _, _ in b) == list(range(4000)) and {b[0][2] for b in batches} == {4}
    again = BucketBatchSampler(4000, 8, len(RESOLUTIONS_512), 4)
    again.set_epoch(3)
    assert list(again) == batches
    again.set_epoch(4)
    assert list(again) != batches
    freq = np.bincount([b[0][1] for b in batches], minlength=10) / len(batches)
    assert np.abs(freq - bucket_probabilities(10)).max() < 0.05  # the landscape half is twice as likely
    varying = BucketBatchSampler(4000, 8, 10, 8, min_views=4)
    varying.set_epoch(0)
    assert {b[0][2] for b in varying} == {4, 5, 6, 7, 8}
    shards = []
    for rank in range(3):
        shard = BucketBatchSampler(4000, 8, 10, 4, rank=rank, world_size=3)
        shard.set_epoch(3)
        shards.append(list(shard))
        assert len(shards[-1]) == len(shard) == 166
    assert [b for trio in zip(*shards) for b in trio] == batches[:498]  # whole batches, round robin


def test_a_loader_over_a_mixture_yields_mixed_batches_per_bucket(tmp_path):
    other = tmp_path / "other"
    shutil.copytree(PACK / "bedlam", other)
    common = {"resolution": [[32, 24], [24, 32]], "num_views": 2, "seed": 1, "aug_crop": 4}
    mix = build_mixture([{"source": "bedlam", "root": str(PACK / "bedlam"), "samples": 6, **common},
                         {"source": "bedlam", "root": str(other), "samples": 6, **common}])
    loader = training_loader(mix, batch_size=4)
    set_loader_epoch(loader, 2)
    roots = set()
    for batch in loader:
        assert batch[0]["img"].shape[0] == 4 and batch[0]["img"].shape[2:] in {(24, 32), (32, 24)}
        assert len(batch) == 2 and batch[1]["camera_intrinsics"].shape == (4, 3, 3)
        roots |= {Path(p).parents[3].name for p in batch[0]["instance"]}
    assert roots == {"bedlam", "other"}
