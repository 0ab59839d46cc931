"""`compact-dataset`: keep a dataset fast as it grows. Deletes rows no live run uses and unreferenced files, rewrites
every table sorted by video (a per-video query reads a row group or two), checkpoints and cleans the logs.

    prefect deployment run compact-dataset/after-nightly --watch     # see prefect.yaml
    python flows/compact.py          # locally with the defaults (data/archive), no server needed

`human3r compact --root ROOT` does the same in one process, without Prefect.
"""

from __future__ import annotations

from prefect import flow

from tasks.ops.compaction import compact_dataset_task


@flow(name="compact-dataset", log_prints=False)
def compact_dataset(dataset: str = "data/archive", min_age_s: float = 3600.0) -> dict:
    """Compact the dataset at `dataset`.

    Args:
        dataset: dataset root (folder or s3://bucket/prefix).
        min_age_s: keep rows of runs replaced less than this many seconds ago, and files unreferenced for less,
            so queries that opened a snapshot a moment ago keep working.
    """
    return compact_dataset_task(dataset, min_age_s)


if __name__ == "__main__":
    compact_dataset()
