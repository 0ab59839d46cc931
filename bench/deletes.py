"""Deleting the rows of replaced runs at archive scale: what a re-run of 1% and of 100% of 20,000 compacted videos
costs to make a plain Delta reader see the live rows, ours (`storage.deletes.delete_replaced`) side by side with
delta-rs's own DELETE of the same run ids, on copies of the same dataset.

    python bench/deletes.py                                  # 20,000 videos, 30 frames and 64 points per frame
    python bench/deletes.py --videos 2000 --keep /tmp/deletes     # smaller; keep the datasets

The base is written through the real writer (bulk commits) and compacted (`storage.maintenance.compact`: one sorted
file per table and 256 MB, row groups of 65,536 rows). Per scenario the given share of the videos is re-run (a
model upgrade: new runs through the same writer, bulk commits, with --rerun-frames frames each: the new runs' files
are live, so no delete reads them, and their size does not enter its cost); then, each on its own copy:
`delete_replaced` (files dropped / rewritten, bytes removed from the snapshot and written, seconds) and delta-rs's
``DeltaTable.delete("run_id IN (...)")`` per data table (skipped above --deltars-max-ids, where its cost per run id
and file makes it impractical, with the estimate printed). After ours: the rows a plain reader counts vs the
catalog, a second call within the watermark's hour (re-checks the re-run videos' row groups) and a call on a clean
archive (nothing to read). Then whether delta-rs writes and reads deletion vectors.
Last line: ``videos=<N> rerun1_s=<s> rerun1_mb_written=<mb> rerun100_s=<s> rerun100_mb_written=<mb>
vs_deltars_1pct=<ratio>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not sys.flags.safe_path:
    # bench/storage.py is named like the `storage` package: re-run with -P so this folder does not shadow it
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

import pyarrow as pa  # noqa: E402

from storage import delta as D  # noqa: E402
from storage import schema as S  # noqa: E402
from storage.catalog import open_catalog  # noqa: E402
from storage.deletes import delete_replaced  # noqa: E402
from storage.fs import open_root  # noqa: E402
from storage.maintenance import compact  # noqa: E402
from storage.synthetic import SynthSpec, synth_video, write_synthetic_dataset  # noqa: E402
from storage.writer import RunInfo, VideoWriter, commit_runs  # noqa: E402


def rerun(root, indices: list[int], rerun_spec: SynthSpec, seed: int, batch: int = 500) -> float:
    """Re-run the videos `indices` of the synthetic archive `seed` with a new model (other rows): seconds."""
    started = time.perf_counter()
    pending = []
    for k, i in enumerate(indices):
        v = synth_video(seed, i, rerun_spec)  # the same video id (from seed and index)
        rows = synth_video(seed + 1, i, rerun_spec)  # the upgraded model's rows for it
        run = RunInfo(model_version="synthetic:1", preset="synthetic", params={"seed": seed + 1},
                      started_at=dt.datetime.now(dt.UTC), source_uri=v["videos"][S.SOURCE_URI][0])
        with VideoWriter(root, v["video_id"], run) as writer:
            for name in S.DATA_TABLES:
                writer.append(name, rows[name])
            pending.append(writer.finish(videos=v["videos"]))
        if len(pending) >= batch or k == len(indices) - 1:
            commit_runs(root, pending)
            pending = []
    return time.perf_counter() - started


def table_bytes(root) -> int:
    return sum(f.size for name in S.DATA_TABLES for f in D.snapshot_files(D.open_table(root, S.TABLES[name])))


def plain_vs_catalog(root) -> tuple[int, int]:
    """Rows of `points` a plain Delta reader counts, and the catalog's live count."""
    plain = pa.table(D.open_table(root, S.POINTS).to_pyarrow_table(columns=[S.RUN_ID])).num_rows
    with open_catalog(root) as cat:
        return plain, cat.query("SELECT count(*) FROM points").column(0)[0].as_py()


def deltars_delete(root, max_ids: int) -> dict:
    """delta-rs's DELETE of every replaced run id, one call per data table (what a plain delta-rs user would do)."""
    from storage.deletes import Succession

    doomed = sorted(Succession.read(root).replaced_at)
    files = {name: len(D.open_table(root, S.TABLES[name]).file_uris()) for name in S.DATA_TABLES}
    if len(doomed) > max_ids:
        # measured below: ~5 us per (run id, file) just to match the IN list against every file's statistics
        est = 5e-6 * len(doomed) * sum(files.values())
        return {"skipped": True, "ids": len(doomed), "files": files, "estimate_s": est}
    predicate = f"{S.RUN_ID} IN ({', '.join(repr(r) for r in doomed)})"
    out = {"skipped": False, "ids": len(doomed), "files": files, "removed": 0, "added": 0, "seconds": 0.0}
    for name in S.DATA_TABLES:
        t = time.perf_counter()
        m = D.open_table(root, S.TABLES[name]).delete(predicate)
        out["seconds"] += time.perf_counter() - t
        out["removed"] += m.get("num_removed_files", 0)
        out["added"] += m.get("num_added_files", 0)
    log = sorted((root.local_path("points") / "_delta_log").glob("*.json"))[-1]
    out["commit_kb"] = log.stat().st_size / 1e3
    return out


def scenario(share: float, base: Path, work: Path, n: int, rerun_spec: SynthSpec, max_ids: int) -> dict:
    ours_dir, theirs_dir = work / f"rerun-{share:g}", work / f"rerun-{share:g}-deltars"
    shutil.rmtree(ours_dir, ignore_errors=True)
    shutil.copytree(base, ours_dir)
    root = open_root(ours_dir)
    step = max(1, round(1 / share))
    indices = list(range(0, n, step))
    rerun_s = rerun(root, indices, rerun_spec, seed=0)
    before = plain_vs_catalog(root)
    shutil.rmtree(theirs_dir, ignore_errors=True)
    shutil.copytree(ours_dir, theirs_dir)
    bytes_before = table_bytes(root)
    report = delete_replaced(root, grace_s=0)
    after = plain_vs_catalog(root)
    t = time.perf_counter()
    again = delete_replaced(root, grace_s=0)
    again_s = time.perf_counter() - t
    later = time.time() + 7200  # past the watermark's hour: the steady state of a clean archive
    delete_replaced(root, grace_s=0, now=later)
    t = time.perf_counter()
    clean = delete_replaced(root, grace_s=0, now=later)
    clean_s = time.perf_counter() - t
    theirs = deltars_delete(open_root(theirs_dir), max_ids)
    shutil.rmtree(theirs_dir, ignore_errors=True)
    shutil.rmtree(ours_dir, ignore_errors=True)
    return {"share": share, "videos": len(indices), "rerun_s": rerun_s, "before": before, "after": after,
            "report": report, "bytes_before": bytes_before, "again_s": again_s, "again_checked": again.checked,
            "clean_s": clean_s, "clean_checked": clean.checked, "theirs": theirs}


def deletion_vectors() -> str:
    """Whether delta-rs writes deletion vectors (with the table feature on) and reads a table that has them."""
    from deltalake import DeltaTable, TableFeatures, write_deltalake

    path = tempfile.mkdtemp(prefix="h3r-dv-")
    try:
        write_deltalake(path, pa.table({"a": list(range(100))}))
        dt_ = DeltaTable(path)
        dt_.alter.add_feature(TableFeatures.DeletionVectors, allow_protocol_versions_increase=True)
        dt_.alter.set_table_properties({"delta.enableDeletionVectors": "true"})
        m = DeltaTable(path).delete("a < 10")
        actions = [json.loads(line) for p in (Path(path) / "_delta_log").glob("*.json")
                   for line in p.read_text().splitlines()]
        dv = any((a.get("add") or {}).get("deletionVector") for a in actions)
        try:
            DeltaTable(path).to_pyarrow_table()
            readable = "reads it"
        except Exception as err:  # noqa: BLE001 - the answer is the message
            readable = f"refuses to read it ({str(err).splitlines()[0][:120]})"
        return (f"delta-rs with deletionVectors enabled: DELETE of 10/100 rows wrote "
                f"{'a deletion vector' if dv else 'no deletion vector'} (added {m['num_added_files']} file, "
                f"removed {m['num_removed_files']}: a rewrite); then delta-rs {readable}")
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=20000)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--shares", default="0.01,1", help="shares of the videos re-run, one scenario each")
    ap.add_argument("--rerun-frames", type=int, default=1, help="frames per re-run video (its rows are never read)")
    ap.add_argument("--deltars-max-ids", type=int, default=2000, help="run delta-rs's DELETE up to this many ids")
    ap.add_argument("--keep", default=None, help="folder to build in (kept); default a temporary one")
    args = ap.parse_args()
    spec = SynthSpec(n_frames=args.frames, points_per_frame=args.points, max_people=4, with_joints=False)
    rerun_spec = dataclasses.replace(spec, n_frames=args.rerun_frames)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, {cpu}")
    work = Path(args.keep or tempfile.mkdtemp(prefix="h3r-deletes-"))
    base = work / "base"
    if not (base / "done").exists():
        t = time.perf_counter()
        write_synthetic_dataset(open_root(base), args.videos, spec, batch=500)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        compact(open_root(base), min_age_s=0)
        print(f"base: {args.videos:,} videos written in {write_s:.0f} s, compacted in {time.perf_counter() - t:.0f} s",
              flush=True)
        (base / "done").touch()  # a kept base is reused by the next run
    root = open_root(base)
    files = {name: len(D.open_table(root, S.TABLES[name]).file_uris()) for name in S.DATA_TABLES}
    print(f"base: {table_bytes(root) / 1e6:,.0f} MB in the data tables, files {files}", flush=True)
    results = {}
    for share in [float(x) for x in args.shares.split(",")]:
        r = scenario(share, base, work, args.videos, rerun_spec, args.deltars_max_ids)
        results[share] = r
        rep, theirs = r["report"], r["theirs"]
        print(f"\nre-run {share:.0%}: {r['videos']:,} videos re-run in {r['rerun_s']:.0f} s; plain reader counted "
              f"{r['before'][0]:,} points rows, the catalog {r['before'][1]:,}")
        print(f"  delete_replaced: {rep.seconds:.1f} s, {len(rep.runs):,} runs, files dropped "
              f"{rep.total('files_dropped'):,} / rewritten {rep.total('files_rewritten'):,}, "
              f"{rep.total('bytes_removed') / 1e6:,.0f} MB left the snapshot of {r['bytes_before'] / 1e6:,.0f} MB, "
              f"{rep.total('bytes_written') / 1e6:,.0f} MB written, rows deleted {rep.total('rows_deleted'):,} / "
              f"copied {rep.total('rows_copied'):,}")
        for name, c in rep.tables.items():
            if c.runs:
                print(f"    {name:>8}: dropped {c.files_dropped:,} rewritten {c.files_rewritten} "
                      f"({c.bytes_removed / 1e6:,.1f} MB out, {c.bytes_written / 1e6:,.1f} MB in)")
        print(f"  then: plain reader {r['after'][0]:,} rows, catalog {r['after'][1]:,}; a second call within the "
              f"hour {r['again_s']:.2f} s ({r['again_checked']:,} runs re-checked); on a clean archive "
              f"{r['clean_s']:.2f} s ({r['clean_checked']} checked)")
        if theirs["skipped"]:
            print(f"  delta-rs DELETE: not run ({theirs['ids']:,} run ids x {sum(theirs['files'].values()):,} files; "
                  f"~{theirs['estimate_s']:,.0f} s to match the IN list against the statistics alone)")
        else:
            print(f"  delta-rs DELETE of the same {theirs['ids']:,} run ids: {theirs['seconds']:.1f} s, files removed "
                  f"{theirs['removed']:,} / added {theirs['added']:,}; its points commit file "
                  f"{theirs['commit_kb']:,.0f} kB (the IN list); ratio delta-rs / ours "
                  f"{theirs['seconds'] / max(rep.seconds, 1e-9):.2f}")
    print("\n" + deletion_vectors())
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    one, all_ = results.get(0.01), results.get(1.0)

    def fig(r, key):
        if r is None:
            return "nan"
        return f"{r['report'].seconds:.1f}" if key == "s" else f"{r['report'].total('bytes_written') / 1e6:.0f}"

    ratio = (f"{one['theirs']['seconds'] / max(one['report'].seconds, 1e-9):.2f}"
             if one and not one["theirs"]["skipped"] else "nan")
    print(f"videos={args.videos} rerun1_s={fig(one, 's')} rerun1_mb_written={fig(one, 'mb')} "
          f"rerun100_s={fig(all_, 's')} rerun100_mb_written={fig(all_, 'mb')} vs_deltars_1pct={ratio}")


if __name__ == "__main__":
    main()
