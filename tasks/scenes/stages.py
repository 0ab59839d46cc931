"""The `fuse-scenes` stages as Prefect tasks: select videos (ids or read-only SQL), fuse each, report.

Each `@task` wraps the plain function of the same name without the suffix, which tests call directly. Re-runs are
free: `tasks.scenes.fuse.fuse_video` skips a video whose live ``scenes`` row has its live run and these parameters (and
whose file exists), so Prefect's cache is not involved (``NO_CACHE``). A video that fails to fuse is reported with
its reason and the others go on.
"""

from __future__ import annotations

import dataclasses
import functools

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from storage import schema as S
from storage.catalog import open_catalog
from storage.errors import StorageError
from storage.fs import open_root
from tasks.errors import SourceError, UsageError
from tasks.scenes.fuse import FuseOptions, fuse_video


@dataclasses.dataclass(frozen=True)
class FuseOutcome:
    """One video's result in the flow: 'fused', 'skipped' (already fused) or 'failed' (with the reason)."""

    video_id: str
    status: str
    message: str
    scene_path: str | None = None
    n_points_out: int = 0
    seconds: float = 0.0


def select_videos(dataset: str, videos: list[str] | None = None, sql: str | None = None) -> list[str]:
    """The videos to fuse: the given ids, the ``video_id`` column of a read-only SQL query over the catalog, or
    (neither) every video of the dataset. Unknown ids or a query without ``video_id`` are a `UsageError`."""
    if videos and sql:
        raise UsageError("give either videos or sql, not both")
    with open_catalog(dataset) as catalog:
        known = catalog.query(f"SELECT {S.VIDEO_ID} FROM videos ORDER BY {S.VIDEO_ID}").column(0).to_pylist()
        if sql:
            result = catalog.query(sql)
            if S.VIDEO_ID not in result.column_names:
                raise UsageError(f"the selection query must return a {S.VIDEO_ID} column; it returned "
                                 f"{result.column_names}")
            return list(dict.fromkeys(v for v in result.column(S.VIDEO_ID).to_pylist() if v is not None))
    if not videos:
        return known
    missing = sorted(set(videos) - set(known))
    if missing:
        raise SourceError(f"videos not in the dataset at {dataset}: {', '.join(missing)}; list them with "
                          f"`human3r query --root {dataset} \"SELECT video_id FROM videos\"`")
    return list(dict.fromkeys(videos))


@functools.lru_cache(maxsize=2)
def _body_model(path: str):
    from human3r.body import BodyModel

    return BodyModel(path)


def fuse_scene(dataset: str, video_id: str, options: FuseOptions, body_model: str | None = None,
               force: bool = False) -> FuseOutcome:
    """Fuse one video; a failure becomes an outcome with its one-line reason (the flow goes on)."""
    try:
        body = _body_model(body_model) if body_model else None
        s = fuse_video(open_root(dataset), video_id, options, body_model=body, force=force)
    except (UsageError, StorageError, OSError, RuntimeError, ValueError) as err:
        return FuseOutcome(video_id, "failed", f"{type(err).__name__}: {' '.join(str(err).split())[:500]}")
    return FuseOutcome(video_id, s.status, s.line, s.scene_path, s.n_points_out, s.seconds)


def fuse_report(outcomes: list[FuseOutcome], dataset: str) -> dict:
    """Counts per status and a one-line summary ('N fused, M already fused, K failed')."""
    counts = {k: sum(o.status == k for o in outcomes) for k in ("fused", "skipped", "failed")}
    line = (f"{counts['fused']} fused, {counts['skipped']} already fused, {counts['failed']} failed "
            f"(scenes of {dataset})")
    return {"line": line, **counts, "videos": [dataclasses.asdict(o) for o in outcomes]}


# ------------------------------------------------------------------------------------------------ Prefect tasks
@task(name="select-videos", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10])
def select_videos_task(dataset: str, videos: list[str] | None, sql: str | None) -> list[str]:
    ids = select_videos(dataset, videos, sql)
    get_run_logger().info("%d video(s) to fuse in %s", len(ids), dataset)
    return ids


@task(name="fuse-scene", cache_policy=NO_CACHE, task_run_name="fuse {video_id}")
def fuse_scene_task(dataset: str, video_id: str, options: FuseOptions, body_model: str | None = None,
                    force: bool = False) -> FuseOutcome:
    outcome = fuse_scene(dataset, video_id, options, body_model, force)
    logger = get_run_logger()
    (logger.warning if outcome.status == "failed" else logger.info)("%s: %s", video_id, outcome.message)
    return outcome


@task(name="fuse-report", cache_policy=NO_CACHE)
def fuse_report_task(outcomes: list[FuseOutcome], dataset: str) -> dict:
    report = fuse_report(outcomes, dataset)
    rows = [{k: v for k, v in o.items() if k != "message"} | {"message": o["message"][:200]}
            for o in report["videos"]]
    if rows:
        create_table_artifact(key="fuse-report", table=rows, description=f"Per-video scene fusion in {dataset}")
    create_markdown_artifact(key="fuse-summary", markdown=f"**{report['line']}**")
    get_run_logger().info(report["line"])
    return report
