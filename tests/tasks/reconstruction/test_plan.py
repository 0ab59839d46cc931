"""Planning with the sources table: a rescan of an unchanged archive reads no video; changed and new files are
probed (and recorded once); refusals and skips are decided without loading a model."""

from __future__ import annotations

import os
import shutil

import pytest

from storage import delta as D
from storage import schema as S
from storage.fs import open_root
from storage.writer import read_sources
from tasks.identity import RunIdentity
from tasks.ops.sample import make_sample_video
from tasks.options import DecodeOptions, ReconstructOptions
from tasks.reconstruction import plan as P
from tasks.reconstruction.discover import list_sources


@pytest.fixture
def inbox(tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    for i in range(3):
        make_sample_video(d / f"clip{i}.mp4", n_frames=6, width=160, height=96, seed=i)
    (d / "broken.mp4").write_bytes(b"\x00" * 500)
    (d / ".partial-copy.mp4").write_bytes(b"still being written")  # hidden: not listed
    return d


OPTIONS = ReconstructOptions(decode=DecodeOptions(max_frames=2))


@pytest.fixture(scope="module")
def identity():
    from human3r.weights import inspect_weights

    return RunIdentity(inspect_weights("untrained:tiny"), "float32", None, OPTIONS)


def _plan(inbox, root, identity, **kw):
    return P.plan(list_sources([str(inbox)]), root, identity, **kw)


def test_a_rescan_of_an_unchanged_archive_reads_no_video(inbox, tmp_path, identity, monkeypatch):
    root = open_root(tmp_path / "ds")
    first = _plan(inbox, root, identity)
    assert (first.probed, first.reused) == (4, 0)
    assert [v.path for v in first.pending] == [str(inbox / f"clip{i}.mp4") for i in range(3)]
    assert [(s.source_uri, s.status, s.stage) for s in first.done] == [(str(inbox / "broken.mp4"), "failed", "probe")]
    sources = D.read_table(root, S.SOURCES)
    assert sources.num_rows == 4 and sources.column(S.PROBE_ERROR).null_count == 3

    def no_reading(*args, **kwargs):
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(P, "probe_video", no_reading)
    second = _plan(inbox, root, identity)
    assert (second.probed, second.reused) == (0, 4)
    assert second.pending == first.pending  # the same probes (hash, header) come back from the table
    assert [(s.source_uri, s.status, s.message) for s in second.done] == [
        (s.source_uri, s.status, s.message) for s in first.done]
    assert D.read_table(root, S.FAILURES).num_rows == 1  # the broken file's failure is not recorded again
    assert D.read_table(root, S.SOURCES).num_rows == 4  # nothing new to remember


def test_changed_and_new_files_are_probed_again(inbox, tmp_path, identity):
    root = open_root(tmp_path / "ds")
    _plan(inbox, root, identity)
    make_sample_video(inbox / "clip1.mp4", n_frames=8, width=160, height=96, seed=7)  # replaced content
    shutil.copy(inbox / "clip0.mp4", inbox / "copy.mp4")  # a new name for known content
    os.utime(inbox / "clip2.mp4")  # touched: mtime changed, content not
    again = _plan(inbox, root, identity)
    assert (again.probed, again.reused) == (3, 2)
    by_path = {v.path: v for v in again.pending}
    assert by_path[str(inbox / "copy.mp4")].video_id == by_path[str(inbox / "clip0.mp4")].video_id
    sources = {r[S.SOURCE_URI]: r for r in read_sources(root).to_pylist()}
    assert sources[str(inbox / "clip1.mp4")][S.FRAME_COUNT] == 8  # the latest probe counts


def test_what_the_dataset_holds_is_skipped_and_force_plans_it_again(inbox, tmp_path, identity, tiny_model):
    from tasks.reconstruction.video import reconstruct_video

    root = open_root(tmp_path / "ds")
    first = _plan(inbox, root, identity)
    assert RunIdentity.of_network(tiny_model, OPTIONS) == identity
    assert reconstruct_video(first.pending[0], root, tiny_model, identity).status == "ok"
    second = _plan(inbox, root, identity)
    assert len(second.pending) == 2 and sum(s.status == "skipped" for s in second.done) == 1
    assert len(_plan(inbox, root, identity, force=True).pending) == 3


def test_a_cached_probe_is_still_checked_against_the_network(inbox, tmp_path, identity, make_video):
    import numpy as np

    root = open_root(tmp_path / "ds")
    make_video(inbox / "thin.mkv", [np.zeros((16, 4000, 3), np.uint8)] * 2, codec="ffv1", pix_fmt="bgr0")
    first = _plan(inbox, root, identity)
    again = _plan(inbox, root, identity)
    for planned in (first, again):
        thin = [s for s in planned.done if s.source_uri.endswith("thin.mkv")]
        assert len(thin) == 1 and "cannot be processed" in thin[0].message


def test_a_batch_reads_the_marker_once_and_each_video_reads_only_its_own_run(tmp_path, identity, tiny_model,
                                                                             s3_proxy):
    """On S3 (requests counted at the server): planning reads the dataset marker and the runs table once for the
    batch; the check each video makes before writing reads no marker and none of the archive's other runs."""
    import datetime as dt

    from storage.synthetic import SynthSpec, synth_video
    from storage.writer import RunInfo, VideoWriter
    from tasks.reconstruction.video import reconstruct_video

    root = open_root(f"s3://archive/counted?endpoint_override={s3_proxy.url}")
    for i in range(4):  # an archive of 4 videos: 4 files in the runs table (their rows are not needed here)
        v = synth_video(7, i, SynthSpec(n_frames=2, points_per_frame=2))
        run = RunInfo(model_version="m", preset="tiny", params={}, started_at=dt.datetime.now(dt.UTC), source_uri="x")
        D.append_rows(root, S.RUNS, VideoWriter(root, v["video_id"], run).finish(videos=v["videos"]).runs_row, f"{i}")
    archive_runs = {p for m, p in s3_proxy.requests if m == "PUT" and "/counted/runs/" in p and p.endswith(".parquet")}
    assert len(archive_runs) == 4
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_sample_video(inbox / "new.mp4", n_frames=2, width=64, height=48, seed=10)
    s3_proxy.requests.clear()

    def reads(kind: str) -> int:
        if kind == "marker":
            return s3_proxy.count("GET", f"/counted/{S.DATASET_FILE}") + s3_proxy.count("HEAD",
                                                                                       f"/counted/{S.DATASET_FILE}")
        return sum(m == "GET" and p in archive_runs for m, p in s3_proxy.requests)

    planned = _plan(inbox, root, identity)
    assert len(planned.pending) == 1
    assert reads("marker") == 2  # one read (pyarrow: a HEAD for the size, a GET) for the whole batch
    at_plan = reads("runs")
    assert 4 <= at_plan <= 8  # every run of the archive, once (a ranged GET or two per file)
    assert reconstruct_video(planned.pending[0], planned.root, tiny_model, identity).status == "ok"
    assert reads("marker") == 2 and reads("runs") == at_plan  # per video: no marker, no other video's run
