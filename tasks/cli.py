"""The `human3r` command: the group, its error handling, and the dataset commands (query, schema, synth, vacuum).

The pipeline commands (`reconstruct`, `demo`, `services`) live in `tasks.cli_run` and the checkpoint commands in
`tasks.weights_cli`; both are loaded only when used, and every command imports what it needs when it runs, so
`human3r --help` does not import torch.

Errors we raise on purpose (a bad option value, a missing dataset, a checkpoint that does not match, ...) and
click's own usage errors become one red line on stderr, never a traceback: exit code 2 when nothing was done
(usage), 1 when some videos failed. `human3r -v` shows debug logs, with the traceback of unexpected failures.
"""

from __future__ import annotations

import json
import logging
import sys

import click

# Errors meaning 'the invocation or its inputs are wrong' (exit 2), by module (a module never imported raised none).
_KNOWN_ERRORS = (
    ("tasks.errors", "UsageError"),
    ("storage.errors", "StorageError"),
    ("human3r.errors", "Human3RError"),
    ("pydantic", "ValidationError"),
)


def _known_errors() -> tuple[type[BaseException], ...]:
    return tuple(getattr(sys.modules[m], name) for m, name in _KNOWN_ERRORS if m in sys.modules)


def _one_line_error(err: BaseException) -> str:
    if type(err).__name__ == "ValidationError":
        from tasks.options import describe_validation_error

        return describe_validation_error(err)
    return str(err).strip() or type(err).__name__


class _Group(click.Group):
    """Loads the commands of other modules when they are used, and turns expected errors into one line."""

    LAZY = {
        "weights": ("tasks.weights_cli", "weights"),
        "reconstruct": ("tasks.cli_run", "reconstruct"),
        "demo": ("tasks.cli_run", "demo"),
        "services": ("tasks.cli_run", "services"),
        "watch": ("tasks.cli_watch", "watch"),
        "fuse": ("tasks.cli_fuse", "fuse"), "export": ("tasks.cli_fuse", "export"), "view": ("tasks.cli_fuse", "view"),
        "labels": ("tasks.cli_labels", "labels"),
        "dashboard": ("tasks.cli_dashboard", "dashboard"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str):
        if name in self.LAZY:
            import importlib

            module, attr = self.LAZY[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.secho("aborted", fg="red", err=True)
            sys.exit(1)
        except click.UsageError as err:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            click.secho(f"error: {err.format_message()}{hint}", fg="red", err=True)
            sys.exit(2)
        except click.ClickException as err:
            click.secho(f"error: {err.format_message()}", fg="red", err=True)
            sys.exit(err.exit_code)
        except _known_errors() as err:
            click.secho(f"error: {_one_line_error(err)}", fg="red", err=True)
            sys.exit(2)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-v", "--verbose", is_flag=True, help="Debug logs, with tracebacks of unexpected failures.")
def cli(verbose: bool) -> None:
    """Human3R archive: turn videos into a queryable 4D dataset of people and scenes.

    \b
    Typical use:
      human3r demo                                   # sample footage through Prefect + Ray into data/demo
      human3r reconstruct clips/ --out data/archive  # videos -> dataset, in this process
      human3r query --root data/demo "SELECT count(*) FROM humans"
      human3r schema                                 # every table and column, with units and frames
      human3r weights resolve auto                   # which checkpoint would be used
    """
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s", force=True)


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


ROOT_HELP = ("Dataset root: a folder or s3://bucket/prefix (S3 endpoint from ?endpoint_override= or "
             "AWS_ENDPOINT_URL).")


@cli.command()
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


@cli.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@_MIN_AGE
def vacuum(root: str, min_age_s: float) -> None:
    """Delete rows no live run uses (replaced or crashed runs) and files no table references. Visible data never
    changes."""
    from storage.fs import open_root
    from storage.maintenance import vacuum as vacuum_root

    report = vacuum_root(open_root(root), min_age_s=min_age_s)
    click.echo(f"{report.line()} in {root}")


@cli.command()
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


@cli.command()
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


@cli.command()
def schema() -> None:
    """Print the dataset schema: tables, columns, types, units and coordinate frames."""
    from storage.schema import describe

    click.echo(describe())


@cli.command()
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


def main() -> None:
    cli(prog_name="human3r")


if __name__ == "__main__":
    main()
