"""The pages: Overview, Videos (paginated list), Video (plots and the frame scrubber), Models (benchmark results), Live
(cameras and sessions), SQL; and their data endpoints.

Each handler validates its parameters (ids are 16 hex chars, numbers are bounded), runs bounded queries
(`dashboards.queries`), builds figures (`dashboards.figures`) and renders a template. Plain ``def`` handlers: FastAPI
runs them in its thread pool; the snapshot's lock serialises their catalog use.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from dashboards import figures, media, queries, usersql
from dashboards.geometry import project_world, step_speeds
from storage import schema as S
from storage.errors import MediaError, QueryError
from storage.geometry import camera_centres
from storage.recipes import RECIPES

router = APIRouter()

PageNo = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number")]
FrameIdx = Annotated[int, Path(ge=0, le=2**31 - 1)]
SqlText = Annotated[str, Query(max_length=20_000)]
LIVE_RELOAD_S = 10  # the Live page reloads itself this often


def _render(request: Request, template: str, **context) -> HTMLResponse:
    context["snapshot"] = request.app.state.snapshot
    return request.app.state.templates.TemplateResponse(request, template, context)


def _video_or_404(request: Request, video_id: str) -> dict:
    if not queries.VIDEO_ID_RE.match(video_id):
        raise HTTPException(404, f"{video_id[:40]!r} is not a video id (a video id is {S.VIDEO_ID_HEX} lowercase hex "
                                 "characters, as in the videos list)")
    run = queries.video(request.app.state.snapshot, video_id)
    if run is None:
        raise HTTPException(404, f"no video {video_id} in this dataset (it may have been removed; see the videos "
                                 "list)")
    return run


# ---------------------------------------------------------------------------------------------------- overview
@router.get("/", response_class=HTMLResponse)
def overview(request: Request, fpage: PageNo = 1):
    snap = request.app.state.snapshot
    with snap.catalog():  # one snapshot for the whole page
        bucket, runs = queries.runs_over_time(snap)
        context = dict(totals=queries.totals(snap), models=queries.models(snap), stages=queries.failure_stages(snap),
                       failures=queries.failures_page(snap, fpage))
    return _render(request, "overview.html", runs_figure=figures.runs_over_time(bucket, runs), **context)


@router.get("/videos", response_class=HTMLResponse)
def videos(request: Request, page: PageNo = 1, q: Annotated[str, Query(max_length=200)] = "",
           sort: Literal["video_id", "longest", "tracks", "newest"] = "video_id"):
    with request.app.state.snapshot.catalog():
        listing = queries.videos_page(request.app.state.snapshot, page, q.strip(), sort)
    return _render(request, "videos.html", listing=listing, q=q.strip(), sort=sort, sorts=list(queries.VIDEO_SORTS))


# ---------------------------------------------------------------------------------------------------- one video
@router.get("/video/{video_id}", response_class=HTMLResponse)
def video(request: Request, video_id: str):
    snap = request.app.state.snapshot
    with snap.catalog():  # one snapshot for the whole page
        run = _video_or_404(request, video_id)
        frames = queries.frames(snap, video_id)
        heads, k = queries.head_tracks(snap, video_id, run[S.N_HUMAN_ROWS])
        scene = queries.scene_points(snap, video_id, run[S.N_POINTS])
        speeds = queries.track_speeds(snap, video_id)
        quality = queries.track_quality(snap, video_id)
    times = np.array([f[S.TIMESTAMP_S] for f in frames], dtype=np.float64)
    n_humans = np.array([f[S.N_HUMANS] for f in frames], dtype=np.int64)
    cams = camera_centres([f[S.CAM_TO_WORLD] for f in frames]) if frames else np.zeros((0, 3))
    track_ids = np.array([h[S.TRACK_ID] for h in heads], dtype=np.int64)
    head_xyz = np.array([h[S.HEAD_WORLD_M] for h in heads], dtype=np.float64).reshape(-1, 3)
    tracks = {int(t): head_xyz[track_ids == t] for t in np.unique(track_ids)}
    step_mps = step_speeds(track_ids, [h[S.TIMESTAMP_S] for h in heads], head_xyz)
    scene_xz = np.array([[p[S.X_M], p[S.Z_M]] for p in scene], dtype=np.float64).reshape(-1, 2)

    quality_figures, quality_columns = [], []
    if quality is not None and quality[1] and S.TRACK_ID in quality[0]:
        quality_columns = [c for c in quality[0] if c not in (S.VIDEO_ID, S.RUN_ID)]
        quality_figures = figures.track_quality(quality[1], queries.QUALITY_FIGURES, S.TRACK_ID)
    try:
        media.check_source(run[S.SOURCE_URI])
        source_note = ""
    except MediaError as err:
        source_note = str(err)
    start = int(np.argmax(n_humans)) if len(n_humans) else 0  # open on the most crowded frame
    return _render(
        request, "video.html", run=run, video_id=video_id, kind=queries.model_kind(run[S.MODEL_VERSION]),
        decimated=k, source_note=source_note, speeds=speeds, quality=quality, quality_figures=quality_figures,
        quality_columns=quality_columns, cell=usersql.cell,
        scrubber={"video_id": video_id, "frames": [f[S.FRAME_IDX] for f in frames],
                  "times": np.round(times, 3).tolist(), "start": start},
        figs={"topdown": figures.top_down(cams, tracks, scene_xz),
              "people": figures.people_per_frame(times, n_humans), "speed": figures.speed_histogram(step_mps)})


@router.get("/api/video/{video_id}/frame/{frame_idx}")
def frame_data(request: Request, video_id: str, frame_idx: FrameIdx):
    """One frame: the overlay figure (source frame + projected heads and joints) and the 3D figure."""
    snap = request.app.state.snapshot
    with snap.catalog():  # one snapshot for the whole reply
        run = _video_or_404(request, video_id)
        row = queries.frame(snap, video_id, frame_idx)
        if row is None:
            raise HTTPException(404, f"video {video_id} has no processed frame {frame_idx} (frames run from 0 to "
                                     f"{run[S.FRAME_COUNT] - 1} with the run's stride; use the scrubber's frames)")
        people = request.app.state.frame_people.frame(snap, run, frame_idx)
        points = queries.frame_points(snap, video_id, frame_idx)
    c2w = np.asarray(row[S.CAM_TO_WORLD], dtype=np.float64)
    intrinsics = (row[S.FX_SRC_PX], row[S.FY_SRC_PX], row[S.CX_SRC_PX], row[S.CY_SRC_PX])
    overlay_people, scene_people = [], []
    for p in people:
        head = np.asarray(p[S.HEAD_WORLD_M], dtype=np.float64)
        joints = np.asarray(p[S.JOINTS_WORLD_M], dtype=np.float64).reshape(-1, 3)
        head_uv, head_ok = project_world(head, c2w, *intrinsics)
        joints_uv, joints_ok = project_world(joints, c2w, *intrinsics)
        overlay_people.append({"track_id": p[S.TRACK_ID], "head_uv": head_uv if head_ok else None,
                               "joints_uv": joints_uv[joints_ok]})
        scene_people.append({"track_id": p[S.TRACK_ID], "head": head, "joints": joints})
    xyz = np.array([[p[S.X_M], p[S.Y_M], p[S.Z_M]] for p in points], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([[p[S.RED], p[S.GREEN], p[S.BLUE]] for p in points], dtype=np.int64).reshape(-1, 3)
    try:
        media.check_source(run[S.SOURCE_URI])
        image_url, note = f"/video/{video_id}/frame/{frame_idx}.jpg", ""
    except MediaError:
        image_url, note = None, "source frame not readable here: projections on a blank canvas"
    return JSONResponse({
        "frame_idx": frame_idx, "timestamp_s": row[S.TIMESTAMP_S], "n_humans": row[S.N_HUMANS],
        "image_url": image_url, "n_points": len(xyz),
        "overlay": figures.frame_overlay(run[S.WIDTH_PX], run[S.HEIGHT_PX], image_url, note, overlay_people),
        "scene": figures.scene_3d({"xyz": xyz, "rgb": rgb}, scene_people, c2w),
    })


@router.get("/video/{video_id}/frame/{frame_idx}.jpg")
def frame_image(request: Request, video_id: str, frame_idx: FrameIdx):
    """The source frame, decoded on demand from the video's source_uri (the only file this reads)."""
    with request.app.state.snapshot.catalog():
        run = _video_or_404(request, video_id)
        row = queries.frame(request.app.state.snapshot, video_id, frame_idx)
    if row is None:
        raise HTTPException(404, f"video {video_id} has no processed frame {frame_idx}")
    try:  # decoding runs outside the lock: other pages go on meanwhile
        jpeg = media.frame_jpeg(run[S.SOURCE_URI], float(row[S.TIMESTAMP_S]))
    except MediaError as err:
        raise HTTPException(404, f"source video not readable: {err}") from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


# ---------------------------------------------------------------------------------------------------- models
@router.get("/models", response_class=HTMLResponse)
def models(request: Request):
    """Benchmark results: the paper's tables with the official figures, every evaluated configuration side by side,
    and per-sequence plots of each evaluated benchmark's metrics."""
    from storage.results import METRIC_UNITS, UNIT_LABELS, paper_tables, sequence_values

    snap = request.app.state.snapshot
    with snap.catalog():  # one snapshot for the whole page
        live = queries.evaluations(snap)
        configs = queries.evaluated_models(snap)
        failed = queries.failed_sequences(snap)
    tables = paper_tables(live)
    plots = []
    for table in tables:
        for col in table.columns:
            by_model = {key.label: values for key, values in
                        sequence_values(live, col.benchmark, col.metric, col.alignment).items()}
            if by_model:
                unit = UNIT_LABELS.get(METRIC_UNITS.get(col.metric, ""), "") or "ratio"
                plots.append({"id": f"fig-seq-{len(plots) + 1}", "column": col,
                              "figure": figures.sequence_bars(f"{col.label} per sequence", unit,
                                                              by_model)})
    return _render(request, "models.html", tables=tables, configs=configs, failed=failed, plots=plots)


# ---------------------------------------------------------------------------------------------------- live
@router.get("/live", response_class=HTMLResponse)
def live(request: Request):
    """The live cameras (their latest health rows) and the latest sessions; the page reloads itself."""
    snap = request.app.state.snapshot
    snap.refresh(force=True)  # one version check per table: a live page shows the last commit, not a 30 s old one
    with snap.catalog():
        cameras = queries.live_cameras(snap)
        sessions = queries.live_sessions(snap)
    return _render(request, "live.html", cameras=cameras, sessions=sessions, reload_s=LIVE_RELOAD_S,
                   stale_intervals=queries.LIVE_STALE_INTERVALS)


# ---------------------------------------------------------------------------------------------------- SQL
def _run_sql(request: Request, q: str, limit: int) -> usersql.Result:
    lim = request.app.state.limits
    return usersql.run(request.app.state.snapshot, q, limit=limit, timeout_s=lim["sql_timeout_s"])


@router.get("/sql", response_class=HTMLResponse)
def sql(request: Request, q: SqlText = "", recipe: Annotated[str, Query(max_length=100)] = "",
        limit: Annotated[int | None, Query(ge=1)] = None):
    lim = request.app.state.limits
    limit = min(limit or lim["sql_max_rows"], lim["sql_max_rows"] * 10)
    if recipe:
        if recipe not in RECIPES:
            raise HTTPException(404, f"no recipe {recipe[:40]!r}; the recipes are: {', '.join(RECIPES)}")
        q = RECIPES[recipe][1]
    result, error = None, ""
    if q.strip():
        try:
            result = _run_sql(request, q, limit)
        except QueryError as err:
            error = str(err)
    return _render(request, "sql.html", q=q, limit=limit, recipes=RECIPES, result=result, error=error,
                   rows=usersql.rows_for_display(result.table) if result else [],
                   timeout_s=lim["sql_timeout_s"], max_limit=lim["sql_max_rows"] * 10)


@router.get("/sql.csv")
def sql_csv(request: Request, q: SqlText, limit: Annotated[int | None, Query(ge=1)] = None):
    lim = request.app.state.limits
    try:
        result = _run_sql(request, q, min(limit or lim["csv_max_rows"], lim["csv_max_rows"]))
    except QueryError as err:
        raise HTTPException(400, f"query failed: {err}") from None
    headers = {"Content-Disposition": 'attachment; filename="query.csv"'}
    if result.truncated:
        headers["X-Rows-Truncated"] = str(result.limit)
    return Response(usersql.to_csv(result.table), media_type="text/csv; charset=utf-8", headers=headers)
