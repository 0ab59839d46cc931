"""The BEDLAM loader: the training parity pack's views (exact rules of the pack), the reference's listing and skip
rules, OpenCV's nearest rule for depth, deterministic and sequence-consistent augmentations, ray-map views at the
reference's rate, and one-line errors naming what a folder lacks."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.errors import UsageError
from tasks.training.data.augment import SeqColorJitter, normalize
from tasks.training.data.bedlam import BedlamDataset, list_sequences
from tasks.training.data.cropping import resize_nearest_cv2
from tasks.training.data.errors import DataLayoutError, TooManyPeopleError
from tasks.training.data.parity import check_batch, failures, pack_batch
from tasks.training.data.pickles import RefusedPickle, load_people
from tasks.training.data.sampling import IMAGE_ONLY_PROB, draw_inputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PACK = Path(__file__).parents[2] / "fixtures" / "train_parity"
SEQ0 = "20991231_1_8_standin_orbit_parityroom_seq_000000"
SEQ1 = "20991231_2_8_standin_orbit_parityroom_seq_000001"


@pytest.fixture
def bedlam_copy(tmp_path) -> Path:
    root = tmp_path / "bedlam"
    shutil.copytree(PACK / "bedlam", root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def test_pack_views_match_the_reference():
    views = pack_batch(PACK)
    checks = check_batch(views, PACK)
    assert not failures(checks)
    n_keys = len([k for k in np.load(PACK / "case_basic.npz").files if k.startswith("batch.")])
    assert len(checks) == n_keys + 3  # every batch.* key and the three string lists were compared
    assert max(c.worst for c in checks.values()) == 0.0  # bit-identical, well inside atol 1e-6 / 1e-5
    # one deliberate change must fail: the rule is not vacuous
    views[2]["depthmap"][0, 5, 5] += 1e-5
    assert failures(check_batch(views, PACK)) == ["batch.v2.depthmap: worst 1e-05 (atol=1e-06)"]


def test_listing_is_sorted_and_skips_what_the_reference_skips(bedlam_copy):
    training = bedlam_copy / "Training"
    for name in ("20221010_3_1000_batch01hand_x_seq_000001",  # HDRI scene
                 "20221013_3_250_batch01hand_closeup_suburb_seq_000002",  # close-up
                 "20221010_3-10_500_batch01hand_zoom_suburb_d_seq_000042",  # invalid list
                 "20221018_1_250_batch01hand_zoom_suburb_b_seq_000003",  # a Test scene in Training
                 "00000000_0_8_first_seq_000009"):  # kept, listed first
        shutil.copytree(training / SEQ0, training / name)
    (training / "notes.txt").write_text("not a sequence")
    names = [name for name, _ in list_sequences(bedlam_copy)]
    assert names == ["00000000_0_8_first_seq_000009", SEQ0, SEQ1]
    ds = BedlamDataset(bedlam_copy, resolution=(64, 48), num_views=4, seed=0)
    assert len(ds) == 3 * 5  # 8 frames, 4 views, no repeats: 5 start frames per sequence
    assert len(BedlamDataset(bedlam_copy, resolution=(64, 48), num_views=4, allow_repeat=True)) == 3 * 6


def test_missing_files_and_keys_are_one_line_errors(bedlam_copy, tmp_path):
    with pytest.raises(DataLayoutError, match="lacks Training/"):
        list_sequences(tmp_path)
    frame = "seq_000001_0015"
    (bedlam_copy / "Training" / SEQ1 / "depth" / f"{frame}.npy").unlink()
    (bedlam_copy / "Training" / SEQ1 / "smpl" / f"{frame}.pkl").unlink()
    with pytest.raises(DataLayoutError) as err:
        BedlamDataset(bedlam_copy, resolution=(64, 48), num_views=4)
    message = str(err.value)
    assert isinstance(err.value, UsageError) and "\n" not in message
    assert f"Training/{SEQ1}/depth/{frame}.npy is missing (and 1 more problems)" in message

    shutil.rmtree(bedlam_copy / "Training" / SEQ1)
    cam = bedlam_copy / "Training" / SEQ0 / "cam" / "seq_000000_0005.npz"
    np.savez(cam, pose=np.eye(4))  # no intrinsics
    ds = BedlamDataset(bedlam_copy, resolution=(64, 48), num_views=4, seed=1)
    with pytest.raises(DataLayoutError, match=f"^Training/{SEQ0}/cam/seq_000000_0005.npz lacks intrinsics "):
        ds[1]  # sample 1 starts at frame 0005
    shutil.rmtree(bedlam_copy / "Training" / SEQ0 / "mask")
    with pytest.raises(DataLayoutError, match=f"Training/{SEQ0} lacks mask/"):
        list_sequences(bedlam_copy)


def test_more_people_than_slots_is_an_error(bedlam_copy):
    pkl = bedlam_copy / "Training" / SEQ0 / "smpl" / "seq_000000_0000.pkl"
    person = load_people(pkl)[0]
    pkl.write_bytes(pickle.dumps([person] * 3))
    ds = BedlamDataset(bedlam_copy, resolution=(64, 48), num_views=4, seed=0, max_humans=2)
    with pytest.raises(TooManyPeopleError, match="seq_000000_0000.png: 3 people in front of the camera, more than"):
        ds[0]


def test_the_unpickler_refuses_code(bedlam_copy):
    class Boom:
        def __reduce__(self):
            return (os.system, ("true",))  # not print: Ray replaces builtins.print in the full suite

    path = bedlam_copy / "Training" / SEQ0 / "smpl" / "seq_000000_0000.pkl"
    path.write_bytes(pickle.dumps([Boom()]))
    with pytest.raises(RefusedPickle, match=r"refuses to load (posix|os|nt)\.system"):
        load_people(path)
    ds = BedlamDataset(bedlam_copy, resolution=(64, 48), num_views=4, seed=0)
    with pytest.raises(DataLayoutError, match=f"{SEQ0}/seq_000000_0000: .*refuses to load (posix|os|nt)\\.system"):
        ds[0]


def test_depth_uses_opencvs_nearest_rule():
    row = np.arange(4, dtype=np.float32)[None, :]
    assert resize_nearest_cv2(row, (3, 1)).tolist() == [[0, 1, 2]]  # floor(x * 4/3); PIL's centre rule: 0, 2, 3
    assert resize_nearest_cv2(np.arange(256)[None], (142, 1))[0, [1, 70, 141]].tolist() == [1, 126, 254]


def test_augmentations_are_deterministic_and_the_same_on_every_view():
    options = dict(resolution=[(64, 48), (48, 64)], num_views=4, seed=5, aug_crop=16)
    plain = BedlamDataset(PACK / "bedlam", **options)
    jittered = BedlamDataset(PACK / "bedlam", color_jitter=True, **options)
    for idx in (2, 7):
        a, b = jittered[(idx, 1, 4)], jittered[(idx, 1, 4)]
        assert all(torch.equal(x["img"], y["img"]) and x["rng"] == y["rng"] for x, y in zip(a, b))
        base = plain[(idx, 1, 4)]
        jitter = SeqColorJitter.draw(np.random.default_rng([5, idx]))
        for view, ref in zip(a, base):
            pixels = ((ref["img"] * 0.5 + 0.5) * 255).round().byte().permute(1, 2, 0).numpy()
            from PIL import Image

            expected = normalize(jitter(Image.fromarray(pixels)))
            assert torch.equal(view["img"], expected)  # one jitter for all views of the sample
            assert not torch.equal(view["img"], ref["img"])
            assert view["img"].shape == (3, 64, 48) and np.array_equal(view["camera_intrinsics"],
                                                                       ref["camera_intrinsics"])
    assert SeqColorJitter.draw(np.random.default_rng([5, 2])) != SeqColorJitter.draw(np.random.default_rng([5, 7]))
    # crop augmentation: a growth per view (focal lengths differ within a sample) or one per sample
    per_view = [v["camera_intrinsics"][0, 0] for v in plain[(3, 0, 4)]]
    per_sample = [v["camera_intrinsics"][0, 0]
                  for v in BedlamDataset(PACK / "bedlam", seq_aug_crop=True, **options)[(3, 0, 4)]]
    assert len(set(per_view)) > 1 and len(set(per_sample)) == 1
    assert min(per_view) >= 199.11111 * 48 / 144 - 1e-3  # never below the no-augmentation focal (zoom in only)


def test_ray_map_views_come_at_the_reference_rate():
    rng = np.random.default_rng(0)
    draws = np.array([[draw_inputs(rng, v)[1] for v in range(4)] for _ in range(6000)])
    assert not draws[:, 0].any()
    assert abs(draws[:, 1:].mean() - (1 - IMAGE_ONLY_PROB)) < 0.01  # 0.15 of the other views, 18,000 draws
    ds = BedlamDataset(PACK / "bedlam", resolution=(32, 32), num_views=4, seed=11)
    flags = np.array([[v["ray_mask"] for v in ds[i]] for i in range(len(ds))])
    assert not flags[:, 0].any() and flags.any()  # some sample of the pack folder has a ground-truth ray map
    first = next(v for sample in (ds[i] for i in range(len(ds))) for v in sample if v["ray_mask"])
    assert first["img_mask"] and np.isfinite(first["ray_map"]).all()
    assert np.allclose(np.linalg.norm(first["ray_map"][..., 3:], axis=-1), 1, atol=1e-6)
