"""The `human3r` command: query the dataset, inspect its schema, make synthetic data, manage weights.

Each subcommand imports what it needs when it runs, so `human3r --help` is instant.
"""

from __future__ import annotations

import json
import sys

import click


class _Group(click.Group):
    """Turns the errors we raise on purpose into one red line and exit code 2 (no traceback)."""

    def invoke(self, ctx: click.Context):
        from human3r.errors import Human3RError
        from storage.errors import StorageError

        try:
            return super().invoke(ctx)
        except (StorageError, Human3RError) as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """Human3R archive: turn videos into a queryable 4D dataset of people and scenes.

    \b
    Typical use:
      human3r synth --root data/demo                 # a synthetic dataset to try queries on
      human3r query --root data/demo "SELECT count(*) FROM humans"
      human3r schema                                 # every table and column, with units and frames
    """


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        inner = ", ".join(_cell(v) for v in value[:4])
        return f"[{inner}{', …' if len(value) > 4 else ''}]"
    return str(value)


def _json_default(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def print_table(table, *, fmt: str = "table", max_rows: int = 200, out=None) -> None:
    """Print an Arrow table as a rich table, CSV (lists as JSON) or JSON records."""
    out = out or sys.stdout
    rows = table.to_pylist()
    if fmt == "json":
        out.write(json.dumps(rows, default=_json_default) + "\n")
    elif fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in rows:
            writer.writerow([json.dumps(v, default=_json_default) if isinstance(v, list | dict) else
                             ("" if v is None else v) for v in row.values()])
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(show_lines=False, header_style="bold")
        for name in table.column_names:
            t.add_column(name, overflow="fold")
        for row in rows[:max_rows]:
            t.add_row(*(_cell(v) for v in row.values()))
        console = Console(file=out, width=max(100, min(200, 24 * len(table.column_names))))
        console.print(t)
        if len(rows) > max_rows:
            console.print(f"[dim]{len(rows) - max_rows} more rows not shown (use --format csv or json for all)[/]")
        else:
            console.print(f"[dim]{len(rows)} row{'s' if len(rows) != 1 else ''}[/]")


@cli.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True,
              help="Dataset root: a folder or s3://bucket/prefix (S3 endpoint from ?endpoint_override= or "
                   "AWS_ENDPOINT_URL).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-rows", default=200, show_default=True, help="Rows shown in table format.")
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


@cli.command()
def schema() -> None:
    """Print the dataset schema: tables, columns, types, units and coordinate frames."""
    from storage.schema import describe

    click.echo(describe())


@cli.command()
@click.option("--root", required=True, help="Where to write the synthetic dataset (folder or s3:// URI).")
@click.option("--videos", "n_videos", default=8, show_default=True, help="Number of videos.")
@click.option("--frames", "n_frames", default=300, show_default=True, help="Frames per video.")
@click.option("--points-per-frame", default=256, show_default=True)
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
    with Progress(transient=True) as progress:
        task = progress.add_task("writing videos", total=n_videos)
        ids = write_synthetic_dataset(open_root(root), n_videos, spec, seed=seed,
                                      progress=lambda i: progress.update(task, completed=i))
    click.echo(f"wrote {len(ids)} synthetic videos ({n_frames} frames each) to {root}")


@cli.command()
@click.option("--root", default="data/demo", show_default=True, help="Dataset root the demo writes and queries.")
@click.option("--videos", "n_videos", default=6, show_default=True)
def demo(root: str, n_videos: int) -> None:
    """The main job, offline: build a dataset, then show what is in it with the README's SQL recipes.

    Until the reconstruction pipeline lands this writes a synthetic dataset (marked model_version
    'synthetic:0'); every recipe below is plain SQL you can run with `human3r query`.
    """
    from storage.catalog import open_catalog
    from storage.fs import open_root
    from storage.recipes import RECIPES
    from storage.synthetic import SynthSpec, write_synthetic_dataset

    click.secho("No model runs in this demo yet: the rows are SYNTHETIC (model_version 'synthetic:0').",
                fg="yellow", bold=True)
    write_synthetic_dataset(open_root(root), n_videos, SynthSpec(n_frames=300, max_people=5), seed=0)
    click.echo(f"dataset at {root}\n")
    with open_catalog(root) as catalog:
        for title, sql in RECIPES.values():
            click.secho(f"-- {title}", bold=True)
            click.echo(f"human3r query --root {root} \"{sql}\"")
            print_table(catalog.query(sql), max_rows=10)
            click.echo()


def main() -> None:
    cli(prog_name="human3r")


if __name__ == "__main__":
    main()
