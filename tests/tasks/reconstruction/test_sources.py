"""The sources cache holds facts, never verdicts: refusals follow today's options, --force probes failed files again,
transient read errors (an S3 server failing the first reads of one object) are retried after a back-off and never
become final, and a sources table written before these columns existed keeps working."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from storage import delta as D
from storage import schema as S
from storage.catalog import open_catalog
from storage.fs import open_root
from storage.maintenance import compact
from tasks.identity import RunIdentity
from tasks.ops.sample import make_sample_video
from tasks.options import DecodeOptions, ReconstructOptions
from tasks.reconstruction import plan as P
from tasks.reconstruction import sources
from tasks.reconstruction.discover import list_sources

OPTIONS = ReconstructOptions(decode=DecodeOptions(max_frames=2))


@pytest.fixture(scope="module")
def identity():
    from human3r.weights import inspect_weights

    return inspect_weights("untrained:tiny")


@pytest.fixture
def inbox(tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    make_sample_video(d / "clip.mp4", n_frames=4, width=160, height=96, seed=1)
    (d / "broken.mp4").write_bytes(b"\x00" * 500)
    return d


def _plan(where, root, weights, options=OPTIONS, **kw):
    return P.plan(list_sources([str(where)]), root, RunIdentity(weights, "float32", None, options), **kw)


def _failures(root) -> dict[str, dict]:
    with open_catalog(root) as cat:
        return {r[S.SOURCE_URI]: r for r in cat.query("SELECT * FROM failures").to_pylist()}


def test_a_max_side_refusal_follows_todays_option_from_the_cached_facts(inbox, tmp_path, identity, monkeypatch):
    root = open_root(tmp_path / "ds")
    small = ReconstructOptions(decode=DecodeOptions(max_frames=2, max_side=100))
    first = _plan(inbox, root, identity, small)
    clip = str(inbox / "clip.mp4")
    refused = [s for s in first.done if s.source_uri == clip]
    assert len(refused) == 1 and "160x96 exceeds the limit of 100 px" in refused[0].message
    assert not first.pending
    (row,) = [r for r in D.read_table(root, S.SOURCES).to_pylist() if r[S.SOURCE_URI] == clip]
    assert row[S.PROBE_ERROR] is None and (row[S.WIDTH_PX], row[S.HEIGHT_PX]) == (160, 96)  # facts, no verdict

    monkeypatch.setattr(P, "probe_video", lambda *a, **k: pytest.fail("an unchanged file was read"))
    again = _plan(inbox, root, identity)  # the limit raised: the same facts, another answer, nothing read
    assert [v.path for v in again.pending] == [clip] and again.probed == 0
    assert clip not in {s.source_uri for s in again.done}


def test_force_probes_failed_files_again_and_only_them(inbox, tmp_path, identity, monkeypatch):
    root = open_root(tmp_path / "ds")
    first = _plan(inbox, root, identity)
    assert [(s.source_uri, s.stage, s.error_type) for s in first.done] == [
        (str(inbox / "broken.mp4"), "probe", "VideoError")]
    assert _plan(inbox, root, identity).probed == 0  # a permanent error is a fact about the unchanged bytes
    read = []
    real = P.probe_video
    monkeypatch.setattr(P, "probe_video", lambda path: read.append(path) or real(path))
    forced = _plan(inbox, root, identity, force=True)
    assert read == [str(inbox / "broken.mp4")] and forced.probed == 1
    assert [v.path for v in forced.pending] == [str(inbox / "clip.mp4")]


def test_a_transient_s3_failure_is_retried_after_its_backoff_and_never_final(s3_proxy, sample_video, tmp_path,
                                                                             identity, monkeypatch):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_proxy.url, region_name="us-east-1")
    client.upload_file(str(sample_video), "archive", "transient/day1/flaky.mp4")
    client.upload_file(str(sample_video), "archive", "transient/day1/steady.mp4")
    uri = f"s3://archive/transient/day1/?endpoint_override={s3_proxy.url}"
    flaky = f"s3://archive/transient/day1/flaky.mp4?endpoint_override={s3_proxy.url}"
    root = open_root(tmp_path / "ds")
    clock = [dt.datetime.now(dt.UTC)]
    monkeypatch.setattr(P.dataset, "utc_now", lambda: clock[0])

    # pyarrow tries a GET 3 times: 6 failures are two failed probes, then the object reads again
    s3_proxy.fail("transient/day1/flaky.mp4", 6, status=503, code="SlowDown")
    first = _plan(uri, root, identity)
    assert [v.path for v in first.pending] == [flaky.replace("flaky", "steady")]
    (failure,) = first.done
    assert (failure.source_uri, failure.stage, failure.error_type) == (flaky, "probe", "TransientReadError")
    # the cause first: the AWS SDK names a 503 SlowDown either by its code or by its status (both seen here)
    assert failure.message.split("could not be read this time (")[1].startswith(("SLOW_DOWN", "SERVICE_UNAVAILABLE"))
    assert "[attempt 1; probed again by the first run after" in failure.message
    row = sources.read_known(root)[flaky]
    assert row[S.PROBE_TRANSIENT] and row[S.PROBE_ATTEMPTS] == 1
    assert row[S.RETRY_AFTER] - clock[0] == dt.timedelta(seconds=sources.RETRY_FIRST_S)
    shown = _failures(root)[flaky]  # what the user sees meanwhile: a probe failure marked transient
    assert (shown[S.STAGE], shown[S.ERROR_TYPE]) == ("probe", "TransientReadError")

    gets = s3_proxy.count("GET", "flaky.mp4")
    waiting = _plan(uri, root, identity)  # inside the back-off: not read, still reported, not recorded again
    assert waiting.probed == 0 and s3_proxy.count("GET", "flaky.mp4") == gets
    assert [s.error_type for s in waiting.done] == ["TransientReadError"]
    assert D.read_table(root, S.FAILURES).num_rows == 1

    clock[0] += dt.timedelta(seconds=sources.RETRY_FIRST_S + 1)
    second = _plan(uri, root, identity)  # due again: fails again, the back-off doubles
    assert second.probed == 1 and "[attempt 2;" in second.done[0].message
    row = sources.read_known(root)[flaky]
    assert row[S.PROBE_ATTEMPTS] == 2 and row[S.RETRY_AFTER] - clock[0] == dt.timedelta(
        seconds=2 * sources.RETRY_FIRST_S)

    clock[0] += dt.timedelta(seconds=2 * sources.RETRY_FIRST_S + 1)
    third = _plan(uri, root, identity)  # the server answers again: the video is planned, its failure superseded
    assert third.probed == 1 and flaky in [v.path for v in third.pending] and not third.done
    assert flaky not in _failures(root)
    assert sources.read_known(root)[flaky][S.PROBE_TRANSIENT] is None


def _legacy_sources_table() -> S.Table:
    """The sources table as schema 2 first defined it (before probe errors were classified)."""
    added = {S.PROBE_TRANSIENT, S.PROBE_ATTEMPTS, S.RETRY_AFTER}
    return S.Table(S.SOURCES.name, S.SOURCES.doc, tuple(c for c in S.SOURCES.columns if c.name not in added),
                   kind=S.SOURCES.kind, key=S.SOURCES.key, latest_by=S.SOURCES.latest_by, stats=S.SOURCES.stats)


def test_a_sources_table_written_before_the_new_columns_keeps_working(inbox, tmp_path, identity):
    from storage.dataset import init_dataset

    root = open_root(tmp_path / "ds")
    init_dataset(root)
    clip = inbox / "clip.mp4"
    st = clip.stat()
    legacy = _legacy_sources_table()
    old = {c: [None] for c in legacy.column_names} | {  # as main stored a max_side refusal: a cached error
        S.SOURCE_URI: [str(clip)], S.SIZE_BYTES: [st.st_size], S.MTIME_NS: [st.st_mtime_ns],
        S.PROBED_AT: [dt.datetime.now(dt.UTC) - dt.timedelta(days=1)],
        S.PROBE_ERROR: ["frame size 160x96 exceeds the limit of 100 px per side (raise --max-side if this is "
                        "intended)"]}
    D.append_rows(root, legacy, pa.table(old, schema=legacy.arrow_schema), "legacy")
    assert S.PROBE_TRANSIENT not in D.open_table(root, S.SOURCES).schema().to_arrow().names

    planned = _plan(inbox, root, identity)  # the unclassified error is probed again; new rows evolve the table
    assert planned.probed == 2 and [v.path for v in planned.pending] == [str(clip)]
    names = D.open_table(root, S.SOURCES).schema().to_arrow().names
    assert {S.PROBE_TRANSIENT, S.PROBE_ATTEMPTS, S.RETRY_AFTER} <= set(names)
    with open_catalog(root) as cat:  # old and new files side by side
        rows = cat.query(f"SELECT * FROM sources_all ORDER BY {S.PROBED_AT}").to_pylist()
        assert [(r[S.SOURCE_URI], r[S.PROBE_TRANSIENT]) for r in rows][0] == (str(clip), None)
        live = {r[S.SOURCE_URI]: r for r in cat.query("SELECT * FROM sources").to_pylist()}
    assert live[str(clip)][S.PROBE_ERROR] is None and live[str(inbox / "broken.mp4")][S.PROBE_TRANSIENT] is False
    compact(root, min_age_s=0)  # maintenance rewrites the evolved table
    assert _plan(inbox, root, identity).probed == 0
    assert sources.read_known(root).keys() == live.keys()
