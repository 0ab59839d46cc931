"""`human3r labels score` and `human3r labels build`: track quality and pseudo-labelled datasets from the command line.

Flags of `build` come from `tasks.labels.options` (defaults and help written there once). Registered lazily on the
`human3r` group (`tasks.cli.main`), which turns expected errors (bad SQL, a bad option, an existing --out) into one
line.
"""

from __future__ import annotations

import click

from tasks.cli.main import ROOT_HELP
from tasks.labels.options import LabelOptions
from tasks.options import click_options

LABEL_FLAGS = {
    "--min-frames": "clips.min_frames",
    "--max-frames": "clips.max_frames",
    "--train": "split.train",
    "--val": "split.val",
    "--test": "split.test",
    "--seed": "split.seed",
    "--images": "images",
    "--jpeg-quality": "jpeg_quality",
    "--crop-margin": "crop_margin",
    "--min-detection-score": "flags.min_detection_score",
    "--max-abs-beta": "flags.max_abs_beta",
    "--max-speed": "flags.max_speed_mps",
    "--max-penetration": "flags.max_penetration_m",
    "--min-bbox": "flags.min_bbox_px",
}


class _Bars:
    """Progress bars on stderr, one per stage, shown from the first update (so an early error prints only its own
    line): ``with _Bars() as bars: work(progress=bars)`` where ``bars(stage, done, total)``."""

    def __init__(self):
        self.progress = None
        self.tasks: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self.progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.progress.start()
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(f"{stage} videos", total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


@click.group(context_settings={"max_content_width": 110})
def labels() -> None:
    """Pseudo-labelled datasets: score every track's quality, then select tracks by SQL and export them.

    \b
    human3r labels score --root data/archive
    human3r query --root data/archive "SELECT * FROM track_quality ORDER BY jitter_mps3 LIMIT 10"
    human3r labels build --root data/archive --out data/labels/v1 \\
        --where "n_frames >= 60 AND jitter_mps3 < 150 AND coalesce(ground_penetration_m, 0) < 0.03"

    The metrics (units, formulas) are in `human3r schema`, table track_quality.
    """


@labels.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@click.option("--video", "videos", multiple=True, help="Score only this video id (repeatable); default: all.")
@click.option("--force", is_flag=True, help="Score again videos whose live run already has track_quality rows.")
def score(root: str, videos: tuple[str, ...], force: bool) -> None:
    """Compute the track_quality rows of every video's live run (only those not scored yet, unless --force).

    One row per (video, track): length, gaps and visibility, detection score, point confidence under the person,
    jitter, largest jump, foot sliding, ground penetration against the video's fitted ground plane, shape range.
    """
    from tasks.labels.quality import score_videos

    with _Bars() as bars:
        report = score_videos(root, videos or None, force=force, progress=lambda done, total: bars("scoring", done,
                                                                                                    total))
    click.echo(report.line)


@labels.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@click.option("--out", required=True, help="Local folder to write the build into (replaced only with --overwrite).")
@click.option("--where", default="true", show_default=True,
              help="SQL condition over track_quality's columns choosing the tracks (read-only; subqueries over "
                   "the other views are fine).")
@click_options(LabelOptions, LABEL_FLAGS, dest="options")
@click.option("--no-score", is_flag=True, help="Do not score unscored videos first (they cannot be selected).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it holds something (the new build is renamed "
                                                 "into place when complete).")
def build(root: str, out: str, where: str, options: LabelOptions, no_score: bool, overwrite: bool) -> None:
    """Build a pseudo-labelled dataset at --out from the tracks --where chooses.

    \b
    Tracks are cut into clips (split where a track is missing from a frame; --min-frames / --max-frames), and
    videos go to train / val / test by a seeded hash (no video in two splits). Written:
      amass/<split>/<clip>.npz      AMASS-style SMPL-X, Z-up world on the fitted floor (needs stored joints)
      labels/<split>.parquet        per person and frame: camera, SMPL-X in the camera frame, 2D keypoints, box,
                                    one validity flag per field (load with datasets.load_dataset("parquet", ...))
      images/...                    with --images frames|crops: JPEGs cut from the source videos
      clips.parquet, videos.parquet, build.json, README.md (the dataset card: provenance, selection, statistics)
    Example:
      human3r labels build --root data/archive --out data/labels/v1 --where "jitter_mps3 < 150" --images crops
    """
    from tasks.labels.build import build_labels

    with _Bars() as bars:
        report = build_labels(root, out, where, options, score=not no_score, overwrite=overwrite, progress=bars)
    click.echo(report.line)
    if report.info["counts"]["clips_without_npz"]:
        click.secho(f"{report.info['counts']['clips_without_npz']} clips have no AMASS npz: their runs stored no "
                    "joints (reconstruct with --body-model)", fg="yellow", err=True)
