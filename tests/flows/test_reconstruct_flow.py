"""The reconstruct-archive flow end to end under the Prefect test harness, with a local Ray cluster."""

from __future__ import annotations

import shutil

import pytest

from storage.catalog import open_catalog
from storage.fs import open_root
from storage.writer import read_failures
from tasks.ops.sample import make_sample_video
from tasks.options import ConvertOptions, DecodeOptions, ModelOptions, ReconstructOptions

pytest.importorskip("ray")


def _counts(root):
    with open_catalog(root) as cat:
        return {t: cat.query(f"SELECT count(*) FROM {t}").column(0)[0].as_py()
                for t in ("videos", "runs", "frames", "humans", "points")}


def _plain_counts(root):
    """What a plain Delta reader counts (no rule applied)."""
    from deltalake import DeltaTable

    return {t: DeltaTable(str(root / t)).to_pyarrow_table(columns=["run_id"]).num_rows
            for t in ("frames", "humans", "points")}


def _leave_a_replaced_run(root):
    """What a writer that died between its runs commit and its delete leaves: rows of a committed, replaced run."""
    import datetime as dt

    import pyarrow as pa

    from storage import schema as S
    from storage.dataset import utc_now
    from storage.synthetic import SynthSpec, synth_video
    from storage.writer import RunInfo, VideoWriter, commit_runs

    with open_catalog(root) as cat:
        video = cat.query("SELECT * FROM videos LIMIT 1").to_pylist()[0]
        live_at = cat.query("SELECT finished_at FROM runs WHERE video_id = ?", [video[S.VIDEO_ID]]).column(0)[0]
    rows = synth_video(0, 0, SynthSpec(n_frames=3, points_per_frame=4))
    run = RunInfo(model_version="m", preset="tiny", params={}, started_at=utc_now(), source_uri=video[S.SOURCE_URI])
    with VideoWriter(open_root(root), video[S.VIDEO_ID], run) as writer:
        for name in ("frames", "humans", "points"):
            writer.append(name, rows[name])
        finished = writer.finish(videos={k: [v] for k, v in video.items()})
        older = pa.array([live_at.as_py() - dt.timedelta(hours=1)], finished.runs_row.schema.field(S.FINISHED_AT).type)
        finished.runs_row = finished.runs_row.set_column(
            finished.runs_row.schema.get_field_index(S.FINISHED_AT), S.FINISHED_AT, older)
        commit_runs(open_root(root), [finished], txn=finished.run_id)
        writer.committed = finished


def _run(source, dataset, **kw):
    from flows.reconstruct import reconstruct_archive

    options = ReconstructOptions(decode=DecodeOptions(max_frames=6), convert=ConvertOptions(points_per_frame=50))
    return reconstruct_archive(source=str(source), dataset=str(dataset),
                               model=ModelOptions(checkpoint="untrained:tiny"), options=options, **kw)


def test_archive_twice_then_new_footage(prefect_harness, tmp_path):
    inbox, dataset = tmp_path / "inbox", tmp_path / "ds"
    inbox.mkdir()
    for i in range(2):
        make_sample_video(inbox / f"clip{i}.mp4", n_frames=10, width=160, height=96, seed=i)
    (inbox / "broken.mp4").write_bytes(b"\x00" * 1000)

    first = _run(inbox, dataset)
    assert first.counts == {"ok": 2, "skipped": 0, "failed": 1}
    assert {r["status"] for r in first.rows} == {"ok", "failed"}
    counts = _counts(dataset)
    assert counts["videos"] == 2 and counts["frames"] == 12

    second = _run(inbox, dataset)  # same archive again: nothing redone, identical rows
    assert second.counts == {"ok": 0, "skipped": 2, "failed": 1}
    assert _counts(dataset) == counts
    assert [f["source_uri"] for f in read_failures(open_root(dataset)).to_pylist()] == [str(inbox / "broken.mp4")]

    make_sample_video(inbox / "clip9.mp4", n_frames=10, width=160, height=96, seed=9)  # the nightly case
    shutil.copy(inbox / "clip0.mp4", inbox / "copy-of-clip0.mp4")  # same content under another name
    _leave_a_replaced_run(dataset)
    assert _plain_counts(dataset)["frames"] == counts["frames"] + 3
    third = _run(inbox, dataset)
    assert third.counts == {"ok": 1, "skipped": 3, "failed": 1}
    counts = _counts(dataset)
    assert counts["videos"] == 3
    assert _plain_counts(dataset) == {t: counts[t] for t in ("frames", "humans", "points")}  # the flow caught up


def test_the_flow_writes_joints_with_only_the_body_model_variable(prefect_harness, tmp_path, smplx_npz,
                                                                   monkeypatch):
    """Defect 2: $HUMAN3R_BODY_MODEL is read where the flow's options are built (as `human3r reconstruct` reads
    it), so the Ray actors load that body model and the rows carry joints; the run records it in its identity.
    The run's report lands as a table artifact."""
    import asyncio
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.reconstruct import reconstruct_archive

    monkeypatch.setenv("HUMAN3R_BODY_MODEL", str(smplx_npz.parent))
    inbox, dataset = tmp_path / "inbox", tmp_path / "ds"
    inbox.mkdir()
    make_sample_video(inbox / "a.mp4", n_frames=6, width=160, height=96)
    report = reconstruct_archive(source=str(inbox), dataset=str(dataset), model={"checkpoint": "untrained:tiny"},
                                 options={"decode": {"max_frames": 3}, "convert": {"points_per_frame": 10}})
    assert report.counts == {"ok": 1, "skipped": 0, "failed": 0}
    with open_catalog(dataset) as cat:
        humans = cat.query("SELECT joints_world_m FROM humans").to_pylist()
        params = json.loads(cat.query("SELECT params_json FROM runs").column(0)[0].as_py())
    assert humans and all(h["joints_world_m"] is not None for h in humans)
    assert params["body_model"].startswith("smplx-")

    async def latest():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["reconstruct-report"])))

    artifacts = asyncio.run(latest())
    assert artifacts and any(str(inbox / "a.mp4") in str(a.data) for a in artifacts)
