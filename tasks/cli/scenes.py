"""`human3r fuse`, `human3r export` and `human3r view`: a video's 3D and 4D outputs from the command line.

* ``fuse``: the fused scene (tasks.scenes.fuse) -> PLY (+ Poisson mesh), recorded in the ``scenes`` table;
* ``export``: rigged SMPL-X characters + camera + scene as one GLB, BVH per track, per-frame meshes
  (tasks.scenes.export);
* ``view``: a Rerun recording to scrub through (tasks.scenes.view).

Registered lazily on the `human3r` group (tasks.cli.main); Open3D, torch, pygltflib and rerun are imported when a
command runs, so `human3r --help` stays fast.
"""

from __future__ import annotations

import click

from tasks.cli.main import ROOT_HELP
from tasks.options import click_options
from tasks.scenes.fuse import FuseOptions

FUSE_FLAGS = {
    "--voxel-size": "voxel_size_m",
    "--conf-min": "conf_min",
    "--drop-people/--keep-people": "drop_people",
    "--people-margin": "people_margin_m",
    "--min-hits": "min_hits",
    "--outlier-neighbors": "outlier_neighbors",
    "--outlier-std-ratio": "outlier_std_ratio",
    "--mesh/--no-mesh": "mesh",
    "--poisson-depth": "poisson_depth",
    "--batch-points": "batch_points",
}
_ROOT = click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
_VIDEO = click.option("--video", "video_id", required=True, help="The video's id (SELECT video_id FROM videos).")
_BODY = click.option("--body-model", default=None, help="SMPL-X body model (SMPLX_NEUTRAL.npz or its folder); "
                                                        "default $HUMAN3R_BODY_MODEL.")


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)


@click.command(context_settings={"max_content_width": 110})
@_ROOT
@_VIDEO
@click.option("--out", default=None, help="Write the PLY here (default: ROOT/_exports/<video>/<run>/scene-<hash>.ply)"
                                          ".")
@click_options(FuseOptions, FUSE_FLAGS, dest="options")
@click.option("--body-model", default=None, help="SMPL-X body model: drop the points within --people-margin of the "
                                                 "posed meshes (without it: of the stored joints, or the head).")
@click.option("--force", is_flag=True, help="Fuse again even if the scenes table has this run and parameters.")
def fuse(root: str, video_id: str, out: str | None, options: FuseOptions, body_model: str | None,
         force: bool) -> None:
    """Fuse a video's scene points into one cleaned point cloud (PLY) and record it in the scenes table.

    \b
    Streams the live run's points (memory does not grow with the video), leaves out low-confidence points and
    points on people, averages them per voxel (position, colour, confidence, hit count), removes statistical
    outliers, writes a binary PLY in the dataset's world frame (metres) and, with --mesh, a Poisson surface
    beside it. A fusion already recorded with the same run and parameters is skipped (--force redoes it).
    Example:
      human3r fuse --root data/demo --video 3f2a9c0d1e4b5a67 --voxel-size 0.02 --mesh
      human3r query --root data/demo "SELECT video_id, n_points_out, scene_path FROM scenes"
    """
    from human3r.body import load_body_model
    from storage.fs import open_root
    from tasks.scenes.fuse import fuse_video

    body = load_body_model(body_model) if body_model else None
    with _progress() as progress:
        task = progress.add_task("fusing (frame)", total=None)
        summary = fuse_video(open_root(root), video_id, options, body_model=body, out=out, force=force,
                             progress=lambda done, total: progress.update(task, completed=done, total=total))
    click.echo(summary.line)


@click.command(context_settings={"max_content_width": 110})
@_ROOT
@_VIDEO
@click.option("--out", default=None, help="The GLB (default: ROOT/_exports/<video>/<run>/bodies.glb).")
@_BODY
@click.option("--scene", default=None, help="A fused scene PLY to include (default: the video's live fused scene, "
                                            "if `human3r fuse` made one).")
@click.option("--no-scene", is_flag=True, help="Leave the fused scene out.")
@click.option("--bvh", is_flag=True, help="Also one BVH per track beside the GLB (<stem>-track-<id>.bvh).")
@click.option("--meshes", type=click.Choice(["ply", "obj"]), default=None,
              help="Also every person in every frame as a full SMPL-X mesh (<stem>-meshes/track-<id>/frame-N.ply).")
def export(root: str, video_id: str, out: str | None, body_model: str | None, scene: str | None, no_scene: bool,
           bvh: bool, meshes: str | None) -> None:
    """Export a video's people as rigged, animated SMPL-X characters (GLB) for Blender, Unity or a game engine.

    \b
    One GLB per video: every track is a character with SMPL-X's 55-joint skeleton, skin weights and rest mesh
    (the track's median shape), animated by the stored rotations and root translation; the camera path and the
    fused scene are in the same file. Axes: glTF is y-up; the dataset frame (the first camera: x right, y down,
    z forward) is turned 180 degrees about x, (x, y, z) -> (x, -y, -z); metres. BVH files use the same frame.
    Per-frame meshes (--meshes) stay in the dataset frame, like the fused scene PLY. Needs the SMPL-X body model.
    Example:
      human3r fuse --root data/demo --video 3f2a9c0d1e4b5a67
      human3r export --root data/demo --video 3f2a9c0d1e4b5a67 --body-model models/smplx --bvh
    """
    import os

    from human3r.body import BodyModel
    from storage.fs import open_root
    from tasks.scenes.export import export_video

    body = BodyModel(body_model)  # no path and no $HUMAN3R_BODY_MODEL: a BodyModelError that says how to get one
    with _progress() as progress:
        task = progress.add_task("exporting", total=None)
        scene_arg = False if no_scene else (os.path.abspath(scene) if scene else True)
        summary = export_video(open_root(root), video_id, body, out=out, scene=scene_arg,
                               bvh=bvh, meshes=meshes,
                               progress=lambda stage, done, total: progress.update(task, completed=done, total=total,
                                                                                   description=stage))
    click.echo(summary.line)
    for path in summary.bvh:
        click.echo(f"  {path}")


@click.command(context_settings={"max_content_width": 110})
@_ROOT
@_VIDEO
@click.option("--out", required=True, help="The Rerun recording to write (.rrd); open it with `rerun video.rrd`.")
@_BODY
@click.option("--points-per-frame", default=None, type=click.IntRange(min=0),
              help="Scene points logged per frame (default: all stored).")
def view(root: str, video_id: str, out: str, body_model: str | None, points_per_frame: int | None) -> None:
    """Write a 4D Rerun recording of a video: scrub through its frames in the Rerun viewer.

    \b
    Per frame: the scene points, the camera (pose + pinhole with the source-video intrinsics), every person as a
    SMPL-X mesh (with a body model) or skeleton, labelled with the track id; static: the people's and camera's
    trajectories and the fused scene (if `human3r fuse` made one). Timelines: `frame` and `time` (seconds).
    World frame: the dataset's (the first camera: x right, y down, z forward; metres).
    Example:
      human3r view --root data/demo --video 3f2a9c0d1e4b5a67 --out video.rrd && rerun video.rrd
    """
    from human3r.body import load_body_model
    from storage.fs import open_root
    from tasks.scenes.view import record_video

    body = load_body_model(body_model)
    with _progress() as progress:
        task = progress.add_task("recording frames", total=None)
        summary = record_video(open_root(root), video_id, out, body_model=body, points_per_frame=points_per_frame,
                               progress=lambda done, total: progress.update(task, completed=done, total=total))
    click.echo(summary.line)
