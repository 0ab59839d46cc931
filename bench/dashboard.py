"""Dashboard page-load times on a large synthetic dataset (default 10,000 videos), through the real server.

    python bench/dashboard.py                          # build .bench/dashboard (10,000 videos, compacted), measure
    python bench/dashboard.py --reuse                  # measure an existing dataset at --root
    python bench/dashboard.py --videos 500 --root /tmp/d500    # smaller

Builds the dataset with `write_synthetic_dataset(root, N, SynthSpec(n_frames=--frames, points_per_frame=--points),
batch=500)` then `storage.maintenance.compact(root, min_age_s=0)`, starts `human3r dashboard --root ROOT --port 0`
in a fresh process (the time until it answers is `start_s`), and times HTTP GETs of each page (server time + transfer
on 127.0.0.1): the first request of each kind (cold: the files are read for the first time) and the median over
--repeat requests on different videos / pages (warm). With /usr/bin/chromium and playwright installed it also times
what a person waits for in a headless browser: navigation until every figure is drawn (and, on a video page, the
first frame of the scrubber shown). The last line is ``videos=<N> overview_ms=<x> video_ms=<y> frame_ms=<z>
sql_ms=<w> browser_video_ms=<b>`` (warm medians).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not sys.flags.safe_path:
    # bench/storage.py is named like the `storage` package: re-run with -P so this folder does not shadow it
    os.execv(sys.executable, [sys.executable, "-P", *sys.argv])

import httpx  # noqa: E402

from storage.catalog import open_catalog  # noqa: E402
from storage.fs import open_root  # noqa: E402
from storage.recipes import RECIPES  # noqa: E402
from storage.synthetic import SynthSpec, write_synthetic_dataset  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def build(root: Path, n: int, frames: int, points: int) -> None:
    from storage.maintenance import compact

    t = time.perf_counter()
    write_synthetic_dataset(open_root(root), n, SynthSpec(n_frames=frames, points_per_frame=points), batch=500,
                            progress=lambda i: i % 1000 == 0 and print(f"  {i} videos written", flush=True))
    print(f"wrote {n} videos in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    compact(open_root(root), min_age_s=0)
    print(f"compacted in {time.perf_counter() - t:.0f} s", flush=True)


def start_server(root: Path) -> tuple[subprocess.Popen, str, float]:
    exe = Path(sys.executable).with_name("human3r")
    t = time.perf_counter()
    proc = subprocess.Popen([str(exe), "dashboard", "--root", str(root), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://[\d.]+:\d+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the dashboard did not start: {line}{proc.stdout.read()}")
    url = match.group(0)
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, url, time.perf_counter() - t


def timed_get(client: httpx.Client, path: str) -> float:
    t = time.perf_counter()
    r = client.get(path)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise SystemExit(f"GET {path} -> {r.status_code}: {r.text[:300]}")
    error = re.search(r'id="sql-error">([^<]*)<', r.text)
    if error:
        print(f"  {path[:60]}: the page shows an error: {error.group(1)[:160]}", flush=True)
    return ms


def measure(client: httpx.Client, name: str, paths: list[str], results: dict) -> None:
    times = [timed_get(client, p) for p in paths]
    results[name] = (times[0], statistics.median(times[1:]) if len(times) > 1 else times[0])
    print(f"{name:<28} first {times[0]:8.0f} ms   median of {len(times) - 1:>2} {results[name][1]:8.0f} ms",
          flush=True)


def browser_times(url: str, video_ids: list[str], repeat: int) -> dict:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {}
    if not os.path.exists(CHROMIUM):
        return {}
    out = {}
    drawn = "[...document.querySelectorAll('.plot[data-figure]')].every(d => d.dataset.drawn === '1')"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/static/plotly.min.js")  # cached from here on, as for a person's second page
        for name, paths, extra in (
            ("browser overview", ["/"] * repeat, ""),
            ("browser video page", [f"/video/{v}" for v in video_ids[:repeat]],
             " && document.getElementById('frame-view').dataset.loaded !== ''"),
            ("browser sql recipe", ["/sql?recipe=fastest_walkers"] * repeat, ""),
        ):
            times = []
            first_drawn = []
            for path in paths:
                t = time.perf_counter()
                page.goto(url + path)
                page.wait_for_function(drawn, timeout=60_000)
                first_drawn.append((time.perf_counter() - t) * 1000)
                page.wait_for_function(drawn + extra, timeout=60_000)
                times.append((time.perf_counter() - t) * 1000)
            out[name] = statistics.median(times)
            print(f"{name:<28} median of {len(times):>2} {out[name]:8.0f} ms (navigation until drawn"
                  + (f"; page figures at {statistics.median(first_drawn):.0f} ms, then the frame view)" if extra
                     else ")"), flush=True)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".bench/dashboard", help="dataset folder (built unless --reuse)")
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--frames", type=int, default=60, help="frames per video")
    ap.add_argument("--points", type=int, default=32, help="scene points per frame")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--reuse", action="store_true", help="measure the dataset already at --root")
    args = ap.parse_args()
    root = Path(args.root).resolve()
    if not args.reuse:
        if root.exists():
            raise SystemExit(f"{root} exists: remove it, or pass --reuse to measure it")
        build(root, args.videos, args.frames, args.points)
    with open_catalog(root) as cat:
        n_videos = cat.query("SELECT count(*) FROM videos").column(0)[0].as_py()
        ids = [r["video_id"] for r in cat.query("SELECT video_id FROM videos").to_pylist()]
        rows = cat.query("SELECT (SELECT count(*) FROM humans) AS h, (SELECT count(*) FROM points) AS p").to_pylist()
    print(f"dataset {root}: {n_videos:,} videos, {rows[0]['h']:,} humans rows, {rows[0]['p']:,} points; "
          f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}", flush=True)
    rnd = random.Random(0)
    sample = rnd.sample(ids, min(len(ids), args.repeat + 1))
    proc, url, start_s = start_server(root)
    print(f"{'server start':<28} {start_s * 1000:8.0f} ms (process start until it answers)", flush=True)
    results: dict[str, tuple[float, float]] = {}
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            r = args.repeat + 1
            pages = max(1, n_videos // 50)
            measure(client, "overview /", ["/"] * r, results)
            measure(client, "videos list, page 1", ["/videos"] * r, results)
            measure(client, "videos list, random pages", [f"/videos?page={rnd.randint(1, pages)}&sort=longest"
                                                          for _ in range(r)], results)
            measure(client, "videos search", [f"/videos?q={v[:3]}" for v in sample], results)
            measure(client, "video page", [f"/video/{v}" for v in sample], results)
            measure(client, "frame, first of a video", [f"/api/video/{v}/frame/{rnd.randint(0, args.frames - 1)}"
                                                         for v in sample], results)
            measure(client, "frame, scrubbing one video", [f"/api/video/{sample[0]}/frame/{i}"
                                                           for i in range(min(r, args.frames))], results)
            measure(client, "sql page", ["/sql"] * r, results)
            for name in RECIPES:
                measure(client, f"recipe {name}", [f"/sql?recipe={name}"] * 3, results)
            measure(client, "csv download (1000 rows)", ["/sql.csv?q=SELECT+*+FROM+frames&limit=1000"] * r, results)
        browser = browser_times(url, sample, args.repeat)
    finally:
        proc.terminate()
        proc.wait(10)
    sql_ms = statistics.median(v[1] for k, v in results.items() if k.startswith("recipe "))
    print(f"videos={n_videos} overview_ms={results['overview /'][1]:.0f} video_ms={results['video page'][1]:.0f} "
          f"frame_ms={results['frame, first of a video'][1]:.0f} sql_ms={sql_ms:.0f} "
          f"browser_video_ms={browser.get('browser video page', float('nan')):.0f}")


if __name__ == "__main__":
    main()
