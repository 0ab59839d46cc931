"""The pseudo-label stages as Prefect tasks (the `build-labels` flow): score the new runs' tracks, then build.

Each `@task` wraps a plain function of `tasks.labels.quality` / `tasks.labels.build` that the CLI and the tests call
directly.
Both are idempotent (scoring skips scored runs; a build replaces its folder in one rename), so they may retry.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.labels.build import build_labels
from tasks.labels.options import LabelOptions
from tasks.labels.quality import score_videos


@task(name="score-tracks", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[5, 30])
def score_tracks(dataset: str, force: bool = False) -> str:
    """track_quality rows for every live run not scored yet (all with `force`)."""
    report = score_videos(dataset, force=force)
    get_run_logger().info(report.line)
    return report.line


@task(name="export-labels", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=[30])
def export_labels(dataset: str, out: str, where: str, options: LabelOptions, overwrite: bool) -> dict:
    """Select, cut, split and export (`tasks.labels.build.build_labels`, scoring left to `score_tracks`)."""
    report = build_labels(dataset, out, where, options, score=False, overwrite=overwrite)
    get_run_logger().info(report.line)
    splits = [{"split": name, **{k: v for k, v in s.items() if k != "flags"}}
              for name, s in report.info["splits"].items()]
    create_table_artifact(key="labels-splits", table=splits, description=f"build {out} of {dataset}")
    create_markdown_artifact(key="labels-report", markdown=f"**{out}**: {report.line}\n\nselection: `{where}`")
    return {"line": report.line, "out": report.out, "counts": report.info["counts"], "splits": splits}
