"""Archive scale: the schema-1 layout (per-video files + commit pointers) vs the Delta layout, side by side, at 200 /
2,000 / 20,000 synthetic videos, plus a second nightly over an unchanged inbox of 20,000 files and an incremental
run over those 20,000 known videos plus 100 new ones.

    python bench/scale.py                              # 200, 2000, 20000 videos; inbox of 20000 files
    python bench/scale.py --sizes 200,2000 --inbox 2000 --keep /tmp/scale   # smaller; keep the datasets
    python bench/scale.py --plan-only                  # only the inbox: rescan and incremental planning

Per size, both layouts hold the same videos (short synthetic ones: --frames frames, --points points per frame).
The old layout is built as schema 1 stored it (one file per table per video under video_id=... folders and a
commit pointer per video; the files of one template video are copied, which is what a query's cost depends on)
and read as its catalog did (every pointer read, then hive-partitioned Parquet views). The new one is written
through the real writer (bulk commits), compacted (`storage.maintenance.compact`) and read by `open_catalog`.
Measured, median of --repeat (warm, in-process): catalog open, a per-video filter query, count(*) over humans,
videos joined with runs, and `human3r query` end to end (a fresh process). Then per-video commits/s at that size
(4 commits each, one writer). The rescan: an inbox of --inbox small video files, a first scan (probes every file),
the videos marked done, then a second scan timed: discovery + plan, as the nightly flow runs them. The incremental
run: --new new files land in the inbox, then discovery + plan are timed (``plan_s``), and the check each new video
makes before it is written (its own live run: `storage.dataset.done_runs(root, [video_id])`, ``check_ms`` per
video), side by side with that check as it was before (every live run of the archive, per video).
Last line: ``videos=<N> open_ms=<x> per_video_ms=<y> count_ms=<z> rescan_s=<s> plan_s=<p> check_ms=<c>`` for the
largest size (with --plan-only: ``files=<N> rescan_s=<s> plan_s=<p> check_ms=<c>``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

if __name__ == "__main__" and not sys.flags.safe_path:
    # bench/storage.py is named like the `storage` package: re-run with -P so this folder does not shadow it
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

from storage import schema as S  # noqa: E402
from storage.catalog import open_catalog
from storage.dataset import utc_now  # noqa: E402
from storage.fs import open_root  # noqa: E402
from storage.synthetic import SynthSpec, synth_video, write_synthetic_dataset  # noqa: E402
from storage.writer import RunInfo, conform, write_video  # noqa: E402

PER_VIDEO = "SELECT count(*), avg(detection_score) FROM humans WHERE video_id = ?"
COUNT = "SELECT count(*) FROM humans"
JOIN = "SELECT count(*), sum(r.n_frames) FROM videos v JOIN runs r USING (video_id)"


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------ schema 1
def build_v1(path: Path, ids: list[str], template: dict) -> None:
    """The schema-1 layout for `ids`, every video a copy of `template`'s files (written once, as v1 wrote them)."""
    path.mkdir(parents=True)
    (path / "_dataset.json").write_text(json.dumps({"schema_version": 1}))
    (path / "_commits").mkdir()
    tmpl = path / "_template"
    tmpl.mkdir()
    for name, table in template.items():
        pq.write_table(table, tmpl / f"{name}.parquet", compression="zstd", row_group_size=max(table.num_rows, 1))
    for vid in ids:
        files = {}
        for name in template:
            rel = f"{name}/video_id={vid}/{name}-g.parquet"
            (path / rel).parent.mkdir(parents=True)
            shutil.copyfile(tmpl / f"{name}.parquet", path / rel)
            files[name] = rel
        (path / "_commits" / f"video_id={vid}.json").write_text(json.dumps({"video_id": vid, "files": files}))
    shutil.rmtree(tmpl)


def open_v1(path: Path) -> duckdb.DuckDBPyConnection:
    """Schema 1's catalog: read every commit pointer, then one hive-partitioned view per table."""
    commits = [json.loads(p.read_text()) for p in sorted((path / "_commits").iterdir())]
    con = duckdb.connect(":memory:")
    for name in ("videos", "runs", "frames", "humans", "points"):
        files = ", ".join(f"'{path / c['files'][name]}'" for c in commits)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{files}], hive_partitioning=true, "
                    "hive_types={'video_id': VARCHAR})")
    return con


def v1_template(spec: SynthSpec) -> dict:
    v = synth_video(0, 0, spec)
    fill = {S.VIDEO_ID: v["video_id"], S.RUN_ID: "r"}
    tables = {name: conform(S.TABLES[name], v[name], fill=fill).drop_columns([S.VIDEO_ID, S.RUN_ID])
              for name in S.DATA_TABLES}
    tables["videos"] = conform(S.VIDEOS, v["videos"]).drop_columns([S.VIDEO_ID])
    run = {c.name: [None] for c in S.RUNS.columns if c.name not in {x.name for x in S.VIDEO_COLUMNS}}
    run.update({S.RUN_ID: ["r"], S.N_FRAMES: [spec.n_frames]})
    tables["runs"] = pa.table(run)
    return tables


# ------------------------------------------------------------------------------------------------ measurements
def measure(con_query, ids: list[str], repeat: int) -> dict:
    import random

    rnd = random.Random(0)
    return {
        "per_video_ms": _median_ms(lambda: con_query(PER_VIDEO, [rnd.choice(ids)]), repeat),
        "count_ms": _median_ms(lambda: con_query(COUNT, None), repeat),
        "join_ms": _median_ms(lambda: con_query(JOIN, None), max(3, repeat // 2)),
    }


def query_e2e_ms(root: Path, repeat: int = 3) -> float:
    exe = shutil.which("human3r") or sys.executable
    cmd = [exe] if exe.endswith("human3r") else [exe, "-m", "tasks.cli.main"]
    return _median_ms(lambda: subprocess.run([*cmd, "query", "--root", str(root), "--format", "csv", COUNT],
                                             check=True, capture_output=True), repeat)


def commits_per_s(root: Path, spec: SynthSpec, n: int = 25) -> float:
    r = open_root(root)
    t = time.perf_counter()
    for i in range(n):
        v = synth_video(99, i, spec)
        run = RunInfo(model_version="synthetic:0", preset="synthetic", params={}, started_at=utc_now(),
                      source_uri=v["videos"][S.SOURCE_URI][0])
        write_video(r, v["video_id"], run=run, videos=v["videos"], frames=v["frames"], humans=v["humans"],
                    points=v["points"])
    return n * 4 / (time.perf_counter() - t)


def count_files(path: Path) -> tuple[int, int]:
    files = folders = 0
    for _, dirs, names in os.walk(path):
        folders += len(dirs)
        files += len(names)
    return files, folders


def bench_size(n: int, spec: SynthSpec, work: Path, repeat: int) -> dict:
    from storage.maintenance import compact

    new, old = work / f"new-{n}", work / f"old-{n}"
    t = time.perf_counter()
    ids = write_synthetic_dataset(open_root(new), n, spec, batch=500)
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    compact(open_root(new), min_age_s=0)
    compact_s = time.perf_counter() - t
    build_v1(old, ids, v1_template(spec))
    out = {"videos": n, "write_s": write_s, "compact_s": compact_s}
    for label, path in (("old", old), ("new", new)):
        t = time.perf_counter()
        if label == "old":
            con = open_v1(path)
            open_ms = (time.perf_counter() - t) * 1000
            results = measure(lambda q, p, con=con: con.execute(q, p).fetchall(), ids, repeat)
            con.close()
            opens = [open_ms] + [_median_ms(lambda p=path: open_v1(p).close(), 1) for _ in range(2)]
        else:
            cat = open_catalog(path)
            results = measure(lambda q, p, cat=cat: cat.query(q, p), ids, repeat)
            cat.close()
            opens = [_median_ms(lambda p=path: open_catalog(p).close(), 1) for _ in range(3)]
        results["open_ms"] = statistics.median(opens)
        results["query_e2e_ms"] = query_e2e_ms(path) if label == "new" else query_e2e_ms_v1(path)
        results["files"], results["folders"] = count_files(path)
        out[label] = results
    out["commits_per_s"] = commits_per_s(new, spec)
    return out


def query_e2e_ms_v1(path: Path) -> float:
    """Schema 1's `human3r query` end to end: a fresh process that imports, opens the v1 catalog and counts."""
    cmd = [sys.executable, __file__, "--v1-query", str(path)]
    return _median_ms(lambda: subprocess.run(cmd, check=True, capture_output=True), 3)


# ------------------------------------------------------------------------------------------------ rescan
def bench_rescan(n_files: int, work: Path, n_new: int = 100) -> dict:
    from human3r.weights import inspect_weights
    from storage import delta as D
    from tasks.identity import RunIdentity
    from tasks.ops.sample import make_sample_video
    from tasks.options import ReconstructOptions
    from tasks.reconstruction.discover import list_sources
    from tasks.reconstruction.plan import plan

    inbox, root = work / "inbox", open_root(work / "inbox-ds")
    template = make_sample_video(work / "template.mp4", n_frames=2, width=64, height=48)
    data = Path(template).read_bytes()
    for i in range(n_files):  # the same clip with a unique trailing "free" box: a distinct file for the hash
        folder = inbox / f"day{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        tail = f"uniq{i:012d}".encode()
        (folder / f"clip{i:06d}.mp4").write_bytes(data + (8 + len(tail)).to_bytes(4, "big") + b"free" + tail)
    identity = RunIdentity(inspect_weights("untrained:tiny"), "float32", None, ReconstructOptions())
    t = time.perf_counter()
    first = plan(list_sources([str(inbox)]), root, identity)
    first_s = time.perf_counter() - t
    assert len(first.pending) == n_files, (len(first.pending), first.done[:3])
    runs = []  # every video done with this model and these parameters (as after a complete nightly)
    for probe in first.pending:
        runs.append({c.name: None for c in S.RUNS.columns} | {
            S.VIDEO_ID: probe.video_id, S.RUN_ID: S.new_run_id(), S.CONTENT_SHA256: probe.content_sha256,
            S.SOURCE_URI: probe.path, S.SIZE_BYTES: probe.size_bytes, S.WIDTH_PX: probe.width,
            S.HEIGHT_PX: probe.height, S.ROTATION_DEG: probe.rotation_deg, S.FRAME_COUNT: probe.frame_count,
            S.MODEL_VERSION: identity.model_version, S.PRESET: "tiny", S.PARAMS_JSON: "{}",
            S.PARAMS_HASH: identity.params_hash, S.SCHEMA_VERSION_COL: S.SCHEMA_VERSION,
            S.STATUS: "complete", S.STARTED_AT: utc_now(), S.FINISHED_AT: utc_now(), S.SECONDS: 0.0, S.N_FRAMES: 2,
            S.N_HUMAN_ROWS: 0, S.N_TRACKS: 0, S.N_POINTS: 0, S.N_DECODE_ERRORS: 0})
    D.append_rows(root, S.RUNS, conform(S.RUNS, {c: [r[c] for r in runs] for c in S.RUNS.column_names}), "bench")
    t = time.perf_counter()
    second = plan(list_sources([str(inbox)]), root, identity)
    rescan_s = time.perf_counter() - t
    assert second.probed == 0 and not second.pending and len(second.done) == n_files
    out = {"files": n_files, "first_scan_s": first_s, "rescan_s": rescan_s, "probed_on_rescan": second.probed}
    return out | bench_incremental(inbox, root, data, n_files, n_new, identity)


def bench_incremental(inbox: Path, root, data: bytes, n_known: int, n_new: int, identity) -> dict:
    """`n_new` files land beside `n_known` done ones: plan them, and check each before writing, timed."""
    from storage import dataset
    from tasks.reconstruction.discover import list_sources
    from tasks.reconstruction.plan import already_done, plan

    folder = inbox / "new"
    folder.mkdir()
    for i in range(n_new):
        tail = f"new{i:012d}".encode()
        (folder / f"clip{i:06d}.mp4").write_bytes(data + (8 + len(tail)).to_bytes(4, "big") + b"free" + tail)
    t = time.perf_counter()
    planned = plan(list_sources([str(inbox)]), root, identity)
    plan_s = time.perf_counter() - t
    assert planned.probed == n_new and len(planned.pending) == n_new and len(planned.done) == n_known
    t = time.perf_counter()
    for video in planned.pending:  # what reconstruct_video reads before it writes: the video's own run
        assert already_done(dataset.done_runs(planned.root, [video.video_id]), video, identity) is None
    check_own_s = time.perf_counter() - t
    t = time.perf_counter()
    for video in planned.pending[:10]:  # the check as it was: every live run, per video (10 of them, scaled)
        assert already_done(dataset.done_runs(planned.root), video, identity) is None
    check_all_s = (time.perf_counter() - t) * n_new / min(10, n_new)
    return {"new": n_new, "plan_s": plan_s, "check_own_s": check_own_s, "check_all_s": check_all_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,2000,20000")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--inbox", type=int, default=20000, help="files in the rescanned inbox (0 = skip)")
    ap.add_argument("--new", type=int, default=100, help="new files of the incremental run")
    ap.add_argument("--plan-only", action="store_true", help="only the inbox: rescan and incremental planning")
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--keep", default=None, help="folder to build in (kept); default a temporary one")
    ap.add_argument("--v1-query", default=None, help=argparse.SUPPRESS)  # the old layout's end-to-end query
    args = ap.parse_args()
    if args.v1_query:
        print(open_v1(Path(args.v1_query)).execute(COUNT).fetchall())
        return
    spec = SynthSpec(n_frames=args.frames, points_per_frame=args.points, max_people=4, with_joints=False)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, {cpu}")
    work = Path(args.keep or tempfile.mkdtemp(prefix="h3r-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    if args.plan_only:
        rescan = bench_rescan(args.inbox, work, args.new)
        _print_rescan(rescan)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        print(f"files={rescan['files']} rescan_s={rescan['rescan_s']:.1f} plan_s={rescan['plan_s']:.1f} "
              f"check_ms={rescan['check_own_s'] / rescan['new'] * 1000:.0f}")
        return
    header = (f"{'videos':>7} {'layout':>6} {'open ms':>9} {'per-video ms':>12} {'count ms':>9} {'join ms':>9} "
              f"{'query e2e ms':>12} {'files':>8} {'folders':>8}")
    for n in [int(x) for x in args.sizes.split(",") if x]:
        r = bench_size(n, spec, work, args.repeat)
        results.append(r)
        print(header)
        for label in ("old", "new"):
            m = r[label]
            print(f"{n:>7} {label:>6} {m['open_ms']:>9.1f} {m['per_video_ms']:>12.1f} {m['count_ms']:>9.1f} "
                  f"{m['join_ms']:>9.1f} {m['query_e2e_ms']:>12.0f} {m['files']:>8,} {m['folders']:>8,}")
        print(f"        new layout: written in {r['write_s']:.1f} s (bulk commits), compacted in "
              f"{r['compact_s']:.1f} s, {r['commits_per_s']:.1f} per-video commits/s at this size", flush=True)
    nan = float("nan")
    rescan = bench_rescan(args.inbox, work, args.new) if args.inbox else {"rescan_s": nan, "plan_s": nan,
                                                                          "check_own_s": nan, "new": 1}
    if args.inbox:
        _print_rescan(rescan)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    last = results[-1]["new"]
    print(f"videos={results[-1]['videos']} open_ms={last['open_ms']:.0f} per_video_ms={last['per_video_ms']:.1f} "
          f"count_ms={last['count_ms']:.1f} rescan_s={rescan['rescan_s']:.1f} plan_s={rescan['plan_s']:.1f} "
          f"check_ms={rescan['check_own_s'] / rescan['new'] * 1000:.0f}")


def _print_rescan(r: dict) -> None:
    print(f"rescan of an unchanged inbox of {r['files']:,} files: {r['rescan_s']:.1f} s ({r['probed_on_rescan']} "
          f"files read; the first scan probed all in {r['first_scan_s']:.1f} s)")
    own_ms, all_ms = r["check_own_s"] / r["new"] * 1000, r["check_all_s"] / r["new"] * 1000
    print(f"incremental run, {r['files']:,} known + {r['new']} new files: planned in {r['plan_s']:.1f} s, then "
          f"each new video's check before writing (its own run) {own_ms:.0f} ms per video; as before (every live "
          f"run per video) {all_ms:.0f} ms per video "
          f"({r['check_all_s'] / max(r['check_own_s'], 1e-9):.0f}x)")


if __name__ == "__main__":
    main()
