"""`fuse-scenes`: fuse the scene points of many videos (all, given ids, or a read-only SQL selection) into one
cleaned point cloud each, written next to the dataset (ROOT/_exports/) and recorded in its ``scenes`` table.

    prefect deployment run fuse-scenes/after-compaction --watch                 # see prefect.yaml
    prefect deployment run fuse-scenes/after-compaction -p sql="SELECT video_id FROM runs WHERE n_tracks > 0"
    python flows/fuse.py          # locally with the defaults (every video of data/archive), no server needed

Re-running is free: a video whose live run is already fused with these parameters is skipped. `human3r fuse` fuses
one video in one process, without Prefect.
"""

from __future__ import annotations

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.scenes.fuse import FuseOptions
from tasks.scenes.stages import fuse_report_task, fuse_scene_task, select_videos_task


@flow(name="fuse-scenes", task_runner=ThreadPoolTaskRunner(max_workers=2), log_prints=False)
def fuse_scenes(
    dataset: str = "data/archive",
    videos: list[str] | None = None,
    sql: str | None = None,
    options: FuseOptions = FuseOptions(),
    body_model: str | None = None,
    force: bool = False,
) -> dict:
    """Fuse the scenes of the selected videos of the dataset at `dataset`.

    Args:
        dataset: dataset root (folder or s3://bucket/prefix).
        videos: video ids to fuse; empty (and no `sql`) = every video.
        sql: a read-only query over the catalog returning a `video_id` column, e.g.
            "SELECT video_id FROM runs WHERE n_points > 100000".
        options: fusion parameters (`tasks.scenes.fuse.FuseOptions`: voxel size, filters, outlier removal, mesh).
        body_model: SMPL-X body model path: points near the posed meshes are dropped (else near the joints).
        force: fuse again even where the scenes table already has this run and these parameters.
    """
    ids = select_videos_task(dataset, videos, sql)
    futures = fuse_scene_task.map(unmapped(dataset), ids, options=unmapped(options), body_model=unmapped(body_model),
                                  force=unmapped(force))
    return fuse_report_task([f.result() for f in futures], dataset)


if __name__ == "__main__":
    fuse_scenes()
