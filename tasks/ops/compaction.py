"""Dataset upkeep as a Prefect task: vacuum dead rows and files, rewrite the tables sorted by video, checkpoint.

`compact_dataset_task` wraps `storage.maintenance.compact` (which the CLI's `human3r compact` calls directly). Writers
may keep committing meanwhile: compaction only rewrites files that existed when it started, and a commit that loses
a race is retried by the task.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from storage.fs import open_root
from storage.maintenance import compact


@task(name="compact-tables", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[30, 120])
def compact_dataset_task(dataset: str, min_age_s: float = 3600.0) -> dict:
    report = compact(open_root(dataset), min_age_s=min_age_s)
    files = {t: f"{report.files_before[t]} -> {report.files_after[t]}" for t in report.files_after}
    line = f"{report.line()}; files per table: {files}"
    get_run_logger().info(line)
    create_markdown_artifact(key="compact-report", markdown=f"**{dataset}**: {line}")
    return {"line": line, "files": files, "rows_deleted": report.rows_deleted}
