"""`human3r query`, `schema`, `synth`, `vacuum`, `compact` and `migrate`: the dataset from the command line.

Each command imports what it needs when it runs (DuckDB, delta-rs); the group (`tasks.cli.main`) loads this module
only when one of them is used and turns expected errors into one line.
"""

from __future__ import annotations

import click

from tasks.cli.main import ROOT_HELP, print_table


@click.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-rows", default=200, show_default=True, type=click.IntRange(min=1),
              help="Rows shown in table format.")
@click.argument("sql")
def query(root: str, fmt: str, max_rows: int, sql: str) -> None:
    """Run read-only SQL over the dataset.

    \b
    Views: videos, runs, failures, frames, humans, points.
    Macros: track_speed(), trajectory_length(), person_distances(), camera_path(), track_steps(),
            cam_center(cam_to_world), dist3(a, b).
    Example:
      human3r query --root data/demo "SELECT video_id, count(*) FROM humans GROUP BY 1"
    """
    from storage.catalog import open_catalog

    with open_catalog(root) as catalog:
        result = catalog.query(sql)
    print_table(result, fmt=fmt, max_rows=max_rows)


_MIN_AGE = click.option("--min-age", "min_age_s", default=3600.0, show_default=True, type=click.FloatRange(min=0),
                        help="Keep what a reader could still need: rows of runs replaced less than this many seconds "
                             "ago, and files unreferenced for less than this.")


@click.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@_MIN_AGE
def vacuum(root: str, min_age_s: float) -> None:
    """Delete rows no live run uses (replaced or crashed runs) and files no table references. Visible data never
    changes."""
    from storage.fs import open_root
    from storage.maintenance import vacuum as vacuum_root

    report = vacuum_root(open_root(root), min_age_s=min_age_s)
    click.echo(f"{report.line()} in {root}")


@click.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@_MIN_AGE
def compact(root: str, min_age_s: float) -> None:
    """Vacuum, then rewrite every table sorted by video into large files (a per-video query reads a row group or
    two), checkpoint and clean the transaction logs. Run it after each nightly (flow `compact-dataset`)."""
    from storage.fs import open_root
    from storage.maintenance import compact as compact_root

    report = compact_root(open_root(root), min_age_s=min_age_s)
    files = ", ".join(f"{t} {report.files_before[t]}->{report.files_after[t]}" for t in report.files_after)
    click.echo(f"{report.line()}; files per table: {files}")


@click.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@click.option("--out", default=None, help="Write the converted dataset here instead of in place (needed for S3).")
def migrate(root: str, out: str | None) -> None:
    """Convert a schema-version-1 dataset (per-video files and commit pointers) to version 2 (Delta Lake tables).

    In place, the old files are moved to ROOT/_schema1/ (nothing is deleted) and the new marker is written last.
    """
    from rich.progress import Progress

    from storage.fs import open_root
    from storage.migrate import migrate as migrate_root

    with Progress(transient=True) as progress:
        task = progress.add_task("migrating videos", total=None)
        report = migrate_root(open_root(root), open_root(out) if out else None,
                              progress=lambda i: progress.update(task, completed=i))
    rows = ", ".join(f"{n:,} {t}" for t, n in report.rows.items())
    click.echo(f"migrated {report.videos} videos ({rows}) and {report.failures} failures to schema version 2"
               + (f"; the version-1 files are in {report.backup}" if report.backup else f" in {out}"))


@click.command()
def schema() -> None:
    """Print the dataset schema: tables, columns, types, units and coordinate frames."""
    from storage.schema import describe

    click.echo(describe())


@click.command()
@click.option("--root", required=True, help="Where to write the synthetic dataset (folder or s3:// URI).")
@click.option("--videos", "n_videos", default=8, show_default=True, type=click.IntRange(min=1),
              help="Number of videos.")
@click.option("--frames", "n_frames", default=300, show_default=True, type=click.IntRange(min=1),
              help="Frames per video.")
@click.option("--points-per-frame", default=256, show_default=True, type=click.IntRange(min=0))
@click.option("--seed", default=0, show_default=True)
def synth(root: str, n_videos: int, n_frames: int, points_per_frame: int, seed: int) -> None:
    """Write a plausible synthetic dataset (smooth cameras, walking people with stable track ids).

    Useful to try queries and the dashboard without a model or videos. Rows are marked model_version
    'synthetic:0' in the runs table.
    """
    from rich.progress import Progress

    from storage.fs import open_root
    from storage.synthetic import SynthSpec, write_synthetic_dataset

    spec = SynthSpec(n_frames=n_frames, points_per_frame=points_per_frame)
    dataset = open_root(root)
    with Progress(transient=True) as progress:
        task = progress.add_task("writing videos", total=n_videos)
        ids = write_synthetic_dataset(dataset, n_videos, spec, seed=seed,
                                      progress=lambda i: progress.update(task, completed=i))
    click.echo(f"wrote {len(ids)} synthetic videos ({n_frames} frames each) to {root}")
