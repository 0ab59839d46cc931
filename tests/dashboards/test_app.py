"""End to end: `human3r dashboard` serves the test dataset and Debian's chromium (headless, driven by playwright)
goes through every page. Numbers on the pages are checked against DuckDB, plots must be drawn and not empty, queries
run, and hostile inputs are refused.

Screenshots of every page are written to build/screenshots/dashboard/ (or $HUMAN3R_SCREENSHOTS) for a person to
look at: overview.png, videos.png, video_synthetic.png, video_real.png, models.png, live.png, sql.png,
sql_refused.png, error.png.
"""

from __future__ import annotations

import csv
import http.client
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from storage import schema as S
from storage.catalog import open_catalog
from storage.recipes import RECIPES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("HUMAN3R_SCREENSHOTS", REPO / "build" / "screenshots" / "dashboard"))
CHROMIUM = "/usr/bin/chromium"
# headless as root in a container, on a closed network: no sandbox, no GPU (WebGL in software), no background calls
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
FIGURE = """id => { const d = document.getElementById(id);
  return d && d._fullData ? d._fullData.map(t => ({type: t.type, name: t.name, x: t.x ? Array.from(t.x) : [],
    y: t.y ? Array.from(t.y) : [], z: t.z ? Array.from(t.z) : []})) : null; }"""
DRAWN = "[...document.querySelectorAll('.plot[data-figure]')].every(d => d.dataset.drawn === '1')"


def query(root, sql: str, params=None) -> list[dict]:
    with open_catalog(root) as cat:
        return cat.query(sql, params).to_pylist()


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (the setup command `./run setup` installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(dash_dataset):
    """The real command in its own process, on a free port; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "tasks.cli.main", "dashboard", "--root", str(dash_dataset["root"]),
                             "--port", "0", "--sql-timeout", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        proc.kill()
        pytest.fail(f"the dashboard did not start: {line}{proc.stderr.read()}")
    yield match.group(0)
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[test]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def context(browser, server):
    """One browser profile for the module (its HTTP cache keeps plotly.js, as a person's browser would)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    """A fresh tab; JavaScript errors fail the test."""
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    yield tab
    tab.close()
    assert not errors, errors


def figure(page, div_id: str) -> list[dict]:
    traces = page.evaluate(FIGURE, div_id)
    assert traces, f"#{div_id} has no figure"
    return traces


def assert_drawn(page, div_id: str) -> None:
    """The figure is in the DOM as SVG or a WebGL canvas, with at least one trace holding data."""
    traces = figure(page, div_id)
    assert any(len(t["x"]) or len(t["y"]) for t in traces), f"#{div_id} is empty"
    assert page.locator(f"#{div_id} .main-svg").count() > 0


def canvas_is_not_blank(page, selector: str) -> None:
    from PIL import Image

    png = page.locator(selector).screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    assert colours > 40, f"{selector} looks blank ({colours} colours)"


# ---------------------------------------------------------------------------------------------------- pages
def test_overview_numbers_match_duckdb(page, dash_dataset):
    root = dash_dataset["root"]
    want = query(root, """SELECT (SELECT count(*) FROM videos) AS videos, (SELECT sum(duration_s) / 3600 FROM videos)
        AS hours, (SELECT count(*) FROM frames) AS frames, (SELECT count(*) FROM humans) AS person_rows,
        (SELECT count(*) FROM (SELECT DISTINCT video_id, track_id FROM humans)) AS tracks,
        (SELECT count(*) FROM points) AS points, (SELECT count(*) FROM failures) AS failures""")[0]
    page.goto("/")
    page.wait_for_function(DRAWN)
    for key, value in want.items():
        shown = page.get_attribute(f"#stat-{key}", "data-value")
        assert float(shown) == pytest.approx(value), key
        if key != "hours":
            assert page.inner_text(f"#stat-{key} .value") == f"{value:,}"
    assert want["failures"] == 1 and want["person_rows"] > 0

    runs = figure(page, "fig-runs")
    assert sum(sum(t["y"]) for t in runs) == query(root, "SELECT count(*) AS n FROM runs_all")[0]["n"]
    assert_drawn(page, "fig-runs")

    failure = query(root, "SELECT * FROM failures")[0]
    row = page.locator("#failures tbody tr").first.inner_text()
    assert dash_dataset["bad_path"] in row and failure[S.STAGE] in row and failure[S.MESSAGE] in row
    assert page.locator("#failure-stages").inner_text().count(failure[S.ERROR_TYPE]) == 1
    untrained = page.locator("#models tr.model-untrained")
    assert untrained.count() == 1 and "UNTRAINED" in untrained.inner_text()
    assert "untrained-tiny-seed0" in untrained.inner_text()
    assert page.locator("#models tr.model-synthetic").count() == 1
    page.screenshot(path=SHOTS / "overview.png", full_page=True)


def test_videos_list_search_and_link(page, dash_dataset):
    page.goto("/videos")
    n = len(dash_dataset["synthetic"]) + 1 + len(dash_dataset["live"]["segments"])
    assert page.get_attribute("#videos-count", "data-value") == str(n)
    assert page.locator("#videos tbody tr").count() == n
    page.screenshot(path=SHOTS / "videos.png", full_page=True)
    page.fill("input[name=q]", dash_dataset["real"][:10])
    page.click("form.filter button")
    page.wait_for_url(re.compile(r"q="))
    assert page.locator("#videos tbody tr").count() == 1
    page.click(f"a[href='/video/{dash_dataset['real']}']")
    page.wait_for_url(f"**/video/{dash_dataset['real']}")
    assert dash_dataset["video_path"] in page.inner_text("#source-uri")


def test_video_page_plots_scrubber_and_projection(page, dash_dataset):
    root, vid = dash_dataset["root"], dash_dataset["quality_video"]
    run = query(root, "SELECT * FROM runs WHERE video_id = ?", [vid])[0]
    page.goto(f"/video/{vid}")
    page.wait_for_function(DRAWN + " && document.getElementById('frame-view').dataset.loaded !== ''")
    counts = page.locator("#video-counts")
    for attr, col in (("frames", S.N_FRAMES), ("tracks", S.N_TRACKS), ("people", S.N_HUMAN_ROWS),
                      ("points", S.N_POINTS)):
        assert counts.get_attribute(f"data-{attr}") == str(run[col])

    tracks = query(root, "SELECT track_id, count(*) AS n FROM humans WHERE video_id = ? GROUP BY 1 ORDER BY 1", [vid])
    top = {t["name"]: t for t in figure(page, "fig-topdown")}
    assert len(top["camera"]["x"]) == run[S.N_FRAMES]
    assert [len(top[f"track {t['track_id']}"]["x"]) for t in tracks] == [t["n"] for t in tracks]
    people = figure(page, "fig-people")[0]
    want = query(root, "SELECT n_humans FROM frames WHERE video_id = ? ORDER BY frame_idx", [vid])
    assert people["y"] == [r["n_humans"] for r in want]
    steps = query(root, "SELECT count(*) AS n FROM track_steps() WHERE video_id = ? AND dt_s > 0", [vid])[0]["n"]
    assert len(figure(page, "fig-speed")[0]["x"]) == steps > 0
    for div in ("fig-topdown", "fig-people", "fig-speed"):
        assert_drawn(page, div)
    speeds = query(root, "SELECT track_id, mean_speed_mps FROM track_speed() WHERE video_id = ? ORDER BY 1", [vid])
    shown = [float(v) for v in page.locator("#tracks td.mean-speed").evaluate_all("e => e.map(x => x.dataset.value)")]
    np.testing.assert_allclose(shown, [s["mean_speed_mps"] for s in speeds], rtol=1e-6)

    # the scrubber: one step right shows the next processed frame, heads projected with the stored camera
    start = int(page.get_attribute("#frame-view", "data-loaded"))
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('frame-view').dataset.loaded === '{start + 1}'")
    f = query(root, "SELECT * FROM frames WHERE video_id = ? AND frame_idx = ?", [vid, start + 1])[0]
    heads = query(root, "SELECT track_id, head_world_m FROM humans WHERE video_id = ? AND frame_idx = ? ORDER BY 1",
                  [vid, start + 1])
    w2c = np.linalg.inv(np.array(f[S.CAM_TO_WORLD], dtype=np.float64).reshape(4, 4))
    overlay = {t["name"]: t for t in figure(page, "fig-overlay")}
    assert len(heads) == f[S.N_HUMANS] > 0
    for h in heads:
        cam = w2c[:3, :3] @ np.array(h[S.HEAD_WORLD_M]) + w2c[:3, 3]
        uv = [f[S.FX_SRC_PX] * cam[0] / cam[2] + f[S.CX_SRC_PX], f[S.FY_SRC_PX] * cam[1] / cam[2] + f[S.CY_SRC_PX]]
        drawn = overlay[f"track {h[S.TRACK_ID]}"]
        np.testing.assert_allclose([drawn["x"][0], drawn["y"][0]], uv, atol=0.06)
        assert len(overlay[f"track {h[S.TRACK_ID]} joints"]["x"]) > 0  # synthetic rows carry joints
    scene = figure(page, "fig-scene")
    n_points = query(root, "SELECT count(*) AS n FROM points WHERE video_id = ? AND frame_idx = ?",
                     [vid, start + 1])[0]["n"]
    assert len(scene[0]["x"]) == n_points > 0 and scene[0]["type"] == "scatter3d"
    canvas_is_not_blank(page, "#fig-scene")
    assert "cannot be shown" in page.inner_text("#source-note")  # synthetic:// sources are not files

    if "track_quality" in S.TABLES:
        quality = query(root, "SELECT * FROM track_quality WHERE video_id = ? ORDER BY track_id", [vid])
        first = figure(page, "fig-quality-1")[0]
        metric = page.evaluate("() => document.getElementById('fig-quality-1').layout.title.text")
        assert first["y"] == pytest.approx([q[metric] for q in quality])
        assert page.locator("#quality-table tbody tr").count() == len(quality)
    page.screenshot(path=SHOTS / "video_synthetic.png", full_page=True)


def test_real_video_shows_its_decoded_frame(page, dash_dataset):
    vid = dash_dataset["real"]
    page.goto(f"/video/{vid}")
    page.wait_for_function(DRAWN + " && document.getElementById('frame-view').dataset.loaded !== ''")
    assert "UNTRAINED" in page.inner_text("h1") and page.locator("#source-note").count() == 0
    idx = page.get_attribute("#frame-view", "data-loaded")
    src = page.evaluate("() => document.getElementById('fig-overlay').layout.images[0].source")
    assert src == f"/video/{vid}/frame/{idx}.jpg"
    page.wait_for_function("() => document.querySelector('#fig-overlay image') !== null")
    image = page.request.get(src)
    assert image.status == 200 and image.headers["content-type"] == "image/jpeg" and image.body()[:2] == b"\xff\xd8"
    canvas_is_not_blank(page, "#fig-overlay")
    canvas_is_not_blank(page, "#fig-scene")
    assert page.locator("#quality-none").count() == 1  # no track-quality rows (or table) for this video
    page.screenshot(path=SHOTS / "video_real.png", full_page=True)


def test_models_page_tables_configurations_and_per_sequence_plots(page, dash_dataset):
    root = dash_dataset["root"]
    page.goto("/models")
    page.wait_for_function(DRAWN)
    tables = {page.get_attribute(f"#{t}", "data-title"): t for t in page.locator("table.results").evaluate_all(
        "ts => ts.map(t => t.id)")}
    assert list(tables) == ["Local human mesh recovery", "Global human motion", "Camera pose"]
    glob = page.locator(f"#{tables['Global human motion']}")
    heads = glob.locator("thead th").evaluate_all(
        "hs => hs.slice(1).map(h => [h.dataset.benchmark, h.dataset.metric])")
    averages = query(root, "SELECT model_version, precision, protocol, benchmark, metric, value FROM evaluations "
                           "WHERE sequence IS NULL")
    want = {(f"{a['model_version']} · {a['precision']} · {a['protocol']}", a["benchmark"], a["metric"]): a["value"]
            for a in averages}
    labels = glob.locator("tbody tr").evaluate_all("rs => rs.map(r => [r.className, r.dataset.label])")
    assert [lab for cls, lab in labels if cls == "row-official"][3] == "official ViT-L/896"
    models = [lab for cls, lab in labels if cls == "row-model"]
    assert models == ["human3r-672S-fedcba9876543210 · bfloat16 · reference",
                      "human3r-896L-0123456789abcdef · float32 · corrected",
                      "human3r-896L-0123456789abcdef · float32 · reference"]
    for label in models:  # every cell is the stored average (or not evaluated)
        cells = glob.locator(f"tbody tr[data-label='{label}'] td.n").evaluate_all("cs => cs.map(c => c.dataset.value)")
        for (bench, metric), shown in zip(heads, cells, strict=True):
            expected = want.get((label, bench, metric))
            assert (shown == "") if expected is None else float(shown) == pytest.approx(expected), (label, metric)
    diff = glob.locator("tbody tr.row-difference")
    assert diff.count() == 1 and "corrected − reference" in diff.inner_text()
    assert "267.9" in glob.inner_text()  # the official W-MPJPE beside them

    configs = page.locator("#configs tbody tr")
    assert configs.count() == len(query(root, "SELECT DISTINCT model_version, precision, protocol, benchmark FROM "
                                              "evaluations"))
    assert "cannot read frame 3" in page.inner_text("#failed-sequences")
    ids = page.locator(".plot[data-figure]").evaluate_all(
        "ps => ps.map(p => [p.id, p.dataset.benchmark, p.dataset.metric])")
    plot = next(i for i, b, m in ids if (b, m) == ("emdb2", "w_mpjpe100"))
    traces = {t["name"]: t for t in figure(page, plot)}
    seqs = query(root, "SELECT model_version, precision, protocol, sequence, value FROM evaluations WHERE "
                       "benchmark = 'emdb2' AND metric = 'w_mpjpe100' AND sequence IS NOT NULL")
    assert len(traces) == 3 and sum(len(t["x"]) for t in traces.values()) == len(seqs)
    for s in seqs:
        t = traces[f"{s['model_version']} · {s['precision']} · {s['protocol']}"]
        assert t["y"][t["x"].index(s["sequence"])] == pytest.approx(s["value"], abs=1e-4)
    assert_drawn(page, plot)
    page.screenshot(path=SHOTS / "models.png", full_page=True)


def test_sql_page_runs_queries_recipes_and_csv(page, dash_dataset):
    root = dash_dataset["root"]
    page.goto("/sql")
    sql = "SELECT video_id, n_frames, model_version FROM runs ORDER BY video_id"
    page.fill("#sql-text", sql)
    page.click("#sql-run")
    page.wait_for_selector("#sql-result")
    cells = page.locator("#sql-result tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert cells == [[r["video_id"], str(r["n_frames"]), r["model_version"]] for r in query(root, sql)]
    reply = page.request.get(page.get_attribute("#sql-csv", "href"))
    assert reply.status == 200 and "attachment" in reply.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(reply.text())))
    assert [(r["video_id"], int(r["n_frames"])) for r in rows] == [(r["video_id"], r["n_frames"])
                                                                   for r in query(root, sql)]

    page.click("#recipe-fastest_walkers")
    page.wait_for_selector("#sql-result")
    want = query(root, RECIPES["fastest_walkers"][1])
    assert page.locator("#sql-result tbody tr").count() == len(want) > 0
    assert page.locator("#sql-result tbody tr").first.locator("td").first.inner_text() == want[0]["video_id"]
    page.screenshot(path=SHOTS / "sql.png", full_page=True)

    page.goto("/sql?q=SELECT+*+FROM+points&limit=5")
    assert page.locator("#sql-result tbody tr").count() == 5
    assert page.get_attribute("#sql-summary", "data-truncated") == "true"


def test_live_page_shows_each_camera_and_the_sessions(page, dash_dataset):
    root, live = dash_dataset["root"], dash_dataset["live"]
    cameras = query(root, "SELECT * FROM live_status ORDER BY camera")
    page.goto("/live")
    assert page.locator("#cameras tr.camera").count() == len(cameras) == 2
    for cam in cameras:
        row = page.locator(f"#cameras tr[data-camera='{cam[S.CAMERA]}']")
        assert row.get_attribute("data-state") == cam[S.STATE]
        assert float(row.get_attribute("data-fps-out")) == pytest.approx(cam[S.FPS_OUT])
        assert int(row.get_attribute("data-dropped")) == cam[S.FRAMES_DROPPED]
        assert int(row.get_attribute("data-people")) == cam[S.PEOPLE_NOW]
        assert int(row.get_attribute("data-segments")) == cam[S.SEGMENTS_COMMITTED]
        assert f"{cam[S.LATENCY_P50_MS]:.0f} / {cam[S.LATENCY_P95_MS]:.0f}" in row.inner_text()
    gate, lobby = (page.locator(f"#cameras tr[data-camera='{c}']") for c in ("gate", "lobby"))
    assert "gone" in gate.inner_text() and "stale" in gate.get_attribute("class")  # silent for 10 min
    assert "running" in lobby.inner_text() and "stale" not in lobby.get_attribute("class")
    session = query(root, "SELECT * FROM sessions")[0]
    row = page.locator(f"#sessions tr[data-session='{live['session']}']")
    assert row.get_attribute("data-segments") == str(session[S.N_SEGMENTS]) == "2"
    assert "1 (2.5 s)" in row.inner_text()  # one break inside the session
    assert page.locator("meta[http-equiv=refresh]").count() == 1
    page.screenshot(path=SHOTS / "live.png", full_page=True)
    lobby.locator(f"a[href='/video/{live['segments'][-1]}']").click()  # the last segment is a video of the dataset
    page.wait_for_url(f"**/video/{live['segments'][-1]}")
    assert live["segments"][-1] in page.inner_text("h1")


def test_hostile_inputs_are_refused(page, server, dash_dataset, tmp_path):
    from dashboards.snapshot import Snapshot
    from storage.fs import open_root

    root = dash_dataset["root"]
    versions = Snapshot(open_root(root)).current_versions()
    stolen = tmp_path / "stolen.csv"
    for sql, says in (("CREATE TABLE x AS SELECT 1", "only read queries"), ("DROP VIEW runs", "only read queries"),
                      (f"COPY runs TO '{stolen}'", "only read queries"), ("SET lock_configuration = false", "SET"),
                      ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
                      ("SELECT 1; DELETE FROM runs_all", "one statement at a time")):
        page.goto("/sql")
        page.fill("#sql-text", sql)
        page.click("#sql-run")
        page.wait_for_selector("#sql-error")
        assert says in page.inner_text("#sql-error") and "root:x:" not in page.content()
    page.screenshot(path=SHOTS / "sql_refused.png", full_page=True)
    assert not stolen.exists()
    assert Snapshot(open_root(root)).current_versions() == versions  # nothing was written

    host, port = server.removeprefix("http://").split(":")
    for path in ("/static/../../pyproject.toml", "/static/..%2f..%2fpyproject.toml", "/static/%2e%2e/app.py",
                 "/static/..%2Fapp.py", "/video/..%2F..%2Fetc%2Fpasswd", "/video/../../../../etc/passwd",
                 f"/video/..%2f..%2f{dash_dataset['real']}/frame/0.jpg", "/sql?recipe=../../etc/passwd"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", path)  # sent as written: http.client does not normalise dot segments
        reply = conn.getresponse()
        body = reply.read().decode(errors="replace")
        conn.close()
        assert reply.status in (400, 404), (path, reply.status)
        assert "[project]" not in body and "root:x:" not in body and "import " not in body, path

    vid = dash_dataset["real"]
    for path, status, says in (
        ("/video/not-a-video-id", 404, "is not a video id"),
        ("/video/0123456789abcdef", 404, "no video 0123456789abcdef"),
        ("/video/0123456789ABCDEF", 404, "is not a video id"),
        (f"/api/video/{vid}/frame/-1", 400, "frame_idx"),
        (f"/api/video/{vid}/frame/abc", 400, "frame_idx"),
        (f"/api/video/{vid}/frame/1", 404, "no processed frame 1"),  # stride 2: odd frames were not processed
        ("/videos?page=0", 400, "page"),
        ("/videos?sort=1;DROP", 400, "sort"),
    ):
        reply = page.request.get(path)
        assert reply.status == status and says in reply.text(), (path, reply.status, reply.text()[:300])
    page.goto("/video/not-a-video-id")
    assert "is not a video id" in page.inner_text("#error-message")
    page.screenshot(path=SHOTS / "error.png", full_page=True)

    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/", headers={"Host": "attacker.example"})  # DNS rebinding: another site's name
    assert conn.getresponse().status == 400
    conn.close()
    headers = page.request.get("/").headers
    assert "default-src 'self'" in headers["content-security-policy"]


# ---------------------------------------------------------------------------------------------------- the command
def test_command_errors_are_one_line(human3r_cli, tmp_path, dash_dataset):
    import socket

    result = human3r_cli("dashboard", "--root", tmp_path / "nothing", code=2)
    assert result.stderr.count("\n") == 1 and "error:" in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = human3r_cli("dashboard", "--root", dash_dataset["root"], "--port", port, code=2)
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port 0" in result.stderr
    assert "/sql" in human3r_cli("dashboard", "--help").stdout
