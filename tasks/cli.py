"""The `human3r` command: query the dataset, inspect its schema, make synthetic data, manage weights.

Each subcommand imports what it needs when it runs, so `human3r --help` is instant.
"""

from __future__ import annotations

import json
import sys
import time

import click


class _Group(click.Group):
    """Turns the errors we raise on purpose into one red line and exit code 2 (no traceback), and loads the
    `weights` subcommands (which import torch) only when they are used."""

    LAZY = {"weights": ("human3r.weights_cli", "weights")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, name: str):
        if name in self.LAZY:
            import importlib

            module, attr = self.LAZY[name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        from human3r.errors import Human3RError
        from storage.errors import StorageError
        from tasks.errors import PipelineError

        try:
            return super().invoke(ctx)
        except (StorageError, Human3RError, PipelineError) as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli() -> None:
    """Human3R archive: turn videos into a queryable 4D dataset of people and scenes.

    \b
    Typical use:
      human3r demo                                   # sample footage through Prefect + Ray into data/demo
      human3r reconstruct clips/ --out data/archive  # videos -> dataset, in this process
      human3r query --root data/demo "SELECT count(*) FROM humans"
      human3r schema                                 # every table and column, with units and frames
      human3r weights resolve auto                   # which checkpoint would be used
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
@click.argument("videos", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--out", "root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True,
              help="Dataset root to write into (folder or s3://bucket/prefix).")
@click.option("--checkpoint", default="auto", show_default=True, envvar="HUMAN3R_CHECKPOINT", show_envvar=True,
              help="Weights: a .pth/.safetensors path, 'auto' (env var, then the Hugging Face cache), "
                   "'hf:faneggg/human3r/<file>', or 'untrained:<preset>[:seed]' for a smoke run with random weights.")
@click.option("--preset", default=None, help="672S, 672B, 672L, 896L or tiny (which file 'auto' prefers).")
@click.option("--body-model", default=None, envvar="HUMAN3R_BODY_MODEL", show_envvar=True,
              help="SMPL-X body model (SMPLX_NEUTRAL.npz or its folder); without it joints are left empty.")
@click.option("--stride", default=1, show_default=True, help="Keep every N-th frame.")
@click.option("--max-frames", type=int, default=None, help="Stop after this many kept frames per video.")
@click.option("--start", "start_s", type=float, default=None, help="Skip frames before this time (s).")
@click.option("--end", "end_s", type=float, default=None, help="Stop at this time (s).")
@click.option("--reset-interval", type=int, default=None,
              help="Re-initialise the state every N frames (long videos); poses are chained across resets.")
@click.option("--ttt3r/--no-ttt3r", default=False, show_default=True, help="TTT3R gated state update.")
@click.option("--points-per-frame", default=2000, show_default=True, help="Scene points kept per frame (0 = none).")
@click.option("--conf-threshold", default=1.5, show_default=True, help="Minimum point confidence (>= 1).")
@click.option("--max-side", default=8192, show_default=True, help="Refuse videos larger than this (px per side).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--force", is_flag=True, help="Redo videos the dataset already holds with this model and parameters.")
def reconstruct(videos, root, checkpoint, preset, body_model, stride, max_frames, start_s, end_s, reset_interval,
                ttt3r, points_per_frame, conf_threshold, max_side, device, force) -> None:
    """Reconstruct VIDEOS (files or folders) into the dataset at --out.

    \b
    Each video is streamed (constant memory), written atomically, and skipped on a re-run with the same model and
    parameters (--force redoes it). A video that cannot be read becomes a row in the failures table with a
    one-line reason and the others go on; the exit code is 1 if any video failed.
    Example:
      human3r reconstruct clips/*.mp4 --out data/archive --checkpoint human3r_896L.pth --stride 2
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from human3r.body import load_body_model
    from human3r.weights import load_model
    from storage.fs import open_root
    from tasks.convert import ConvertOptions
    from tasks.decode import DecodeOptions
    from tasks.discover import list_videos
    from tasks.reconstruct import ReconstructOptions, reconstruct_video, resolve_device

    console = Console(stderr=True)
    options = ReconstructOptions(
        decode=DecodeOptions(stride=stride, max_frames=max_frames, start_s=start_s, end_s=end_s, max_side=max_side),
        convert=ConvertOptions(points_per_frame=points_per_frame, conf_threshold=conf_threshold),
        reset_interval=reset_interval, use_ttt3r=ttt3r,
    )
    dev = resolve_device(device)
    model, identity = load_model(checkpoint, preset=preset, device=dev)
    if identity.is_untrained:
        console.print(f"[bold yellow]UNTRAINED WEIGHTS ({identity.name}): a smoke run; every row is marked "
                      f"model_version={identity.model_version}[/]")
    body = load_body_model(body_model, device="cpu") if body_model else None
    paths = list_videos(videos)
    dataset = open_root(root)
    summaries = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        for path in paths:
            task = progress.add_task(path.rsplit("/", 1)[-1][:40], total=None, fps=0.0)
            t0 = time.perf_counter()

            def update(done, expected, task=task, t0=t0):
                progress.update(task, completed=done, total=expected,
                                fps=done / max(time.perf_counter() - t0, 1e-9))

            summary = reconstruct_video(path, dataset, model, identity, options=options, body_model=body,
                                        force=force, progress=update)
            progress.update(task, visible=False)
            summaries.append(summary)
            if summary.status == "skipped":
                console.print(f"skipped {path}: {summary.message} (--force redoes it)")
            elif summary.status == "failed":
                console.print(f"[red]failed {path}[/] at {summary.stage}: {summary.message}")
            else:
                console.print(f"[green]done[/] {path}: {summary.frames} frames, {summary.tracks} people, "
                              f"{summary.points:,} points in {summary.seconds:.1f} s")
    _print_summaries(summaries, root)
    if any(s.status == "failed" for s in summaries):
        sys.exit(1)


def _print_summaries(summaries, root: str) -> None:
    import pyarrow as pa

    columns = ("source_uri", "status", "video_id", "frames", "tracks", "points", "seconds", "message")
    table = pa.Table.from_pylist([{k: getattr(s, k) for k in columns} for s in summaries])
    print_table(table, max_rows=1000)
    counts = {k: sum(s.status == k for s in summaries) for k in ("ok", "skipped", "failed")}
    click.echo(f"{counts['ok']} reconstructed, {counts['skipped']} skipped, {counts['failed']} failed -> {root}")


@cli.command()
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help="Dataset root.")
@click.option("--min-age", "min_age_s", default=3600.0, show_default=True,
              help="Only delete orphans older than this many seconds (a write in progress is never touched).")
def vacuum(root: str, min_age_s: float) -> None:
    """Delete files no commit references (left behind by crashed or killed writes). Visible data never changes."""
    from storage.fs import open_root
    from storage.manifest import check_dataset
    from storage.manifest import vacuum as vacuum_root

    dataset = open_root(root)
    check_dataset(dataset)
    removed = vacuum_root(dataset, min_age_s=min_age_s)
    click.echo(f"removed {len(removed)} orphaned file(s) from {root}")


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
@click.option("--footage", default="data/demo-footage", show_default=True,
              help="Folder of the demo videos (3 sample clips are generated into it if missing).")
@click.option("--dataset", default="data/demo", show_default=True, help="Dataset root the demo writes.")
@click.option("--checkpoint", default="auto", show_default=True, envvar="HUMAN3R_CHECKPOINT", show_envvar=True,
              help="Weights; 'auto' falls back to untrained:tiny (loudly) when none are installed.")
@click.option("--home", default=None, envvar="HUMAN3R_HOME", help="State folder for the local services "
              "[default: .human3r]")
@click.option("--port", type=int, default=None, envvar="HUMAN3R_PREFECT_PORT", help="Prefect server port [4200].")
@click.option("--timeout", "timeout_s", default=1800, show_default=True, help="Seconds to wait for the run.")
def demo(footage: str, dataset: str, checkpoint: str, home: str | None, port: int | None, timeout_s: int) -> None:
    """The main job on one machine: the whole pipeline through a real Prefect server, worker and Ray actors.

    \b
    1. starts a Prefect server (SQLite, 127.0.0.1) and a process worker unless they are running;
    2. deploys prefect.yaml and runs `prefect deployment run reconstruct-archive/demo --watch`;
    3. prints what landed in the dataset (DuckDB).
    Stop the services with `human3r services stop`. Exit code 1 if the run did not complete.
    """
    from human3r.errors import CheckpointError
    from human3r.weights import inspect_weights
    from tasks.services import Services

    try:
        identity = inspect_weights(checkpoint)
    except CheckpointError as err:
        if checkpoint != "auto":
            raise
        click.secho("=" * 100, fg="yellow", bold=True)
        click.secho("No Human3R checkpoint found (HUMAN3R_CHECKPOINT unset, nothing in the Hugging Face cache).",
                    fg="yellow", bold=True)
        click.secho("The demo runs with UNTRAINED weights (untrained:tiny): the pipeline is real, the numbers "
                    "are not.", fg="yellow", bold=True)
        click.secho(f"To use the real model: {str(err).splitlines()[-1][:300]}", fg="yellow")
        click.secho("=" * 100, fg="yellow", bold=True)
        checkpoint = "untrained:tiny"
    else:
        click.echo(f"weights: {identity.name} ({identity.model_version})")

    services = Services.from_env(home, port)
    t0 = time.perf_counter()
    click.echo(f"Prefect server: {'started' if services.start_server() else 'already running'} at "
               f"{services.api_url} ({time.perf_counter() - t0:.1f} s)")
    click.echo(f"Prefect worker: {'started' if services.start_worker() else 'already running'} "
               f"(pool local-process; logs in {services.home})")
    services.deploy()
    click.echo("deployed prefect.yaml: reconstruct-archive/demo, reconstruct-archive/nightly")
    params = {"source": footage, "dataset": dataset, "checkpoint": checkpoint}
    t1 = time.perf_counter()
    rc = services.run_deployment("reconstruct-archive/demo", params, timeout_s=timeout_s)
    click.echo(f"flow run finished with exit code {rc} in {time.perf_counter() - t1:.1f} s")
    if rc != 0:
        click.secho(f"the demo run did not complete; see `prefect flow-run ls` and {services.home}/worker.log",
                    fg="red", err=True)
        sys.exit(1)

    from storage.catalog import open_catalog
    from storage.recipes import RECIPES

    with open_catalog(dataset) as catalog:
        for key in ("overview", "fastest_walkers", "failures"):
            title, sql = RECIPES[key]
            click.secho(f"-- {title}", bold=True)
            print_table(catalog.query(sql), max_rows=10)
    click.echo(f"\nquery it:  human3r query --root {dataset} \"SELECT count(*) FROM humans\"")
    click.echo("stop the services:  human3r services stop")


@cli.group()
def services() -> None:
    """The local Prefect server and worker that `human3r demo` starts."""


def _services_options(fn):
    fn = click.option("--port", type=int, default=None, envvar="HUMAN3R_PREFECT_PORT", help="Server port [4200].")(fn)
    return click.option("--home", default=None, envvar="HUMAN3R_HOME", help="State folder [.human3r].")(fn)


@services.command("status")
@_services_options
def services_status(home, port) -> None:
    """Is the server answering, is the worker running."""
    from tasks.services import Services

    st = Services.from_env(home, port).status()
    click.echo(f"server: {st['server'] or 'not running'} (pid {st['server_pid']})")
    click.echo(f"worker: {'running, pid ' + str(st['worker_pid']) if st['worker_pid'] else 'not running'}")
    click.echo(f"state:  {st['home']}")


@services.command("stop")
@_services_options
def services_stop(home, port) -> None:
    """Stop the worker and the server started by `human3r demo`."""
    from tasks.services import Services

    stopped = Services.from_env(home, port).stop()
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@services.command("env")
@_services_options
def services_env(home, port) -> None:
    """Print `export` lines so `prefect ...` commands talk to this server: eval "$(human3r services env)"."""
    from tasks.services import Services

    for key, value in Services.from_env(home, port).env().items():
        click.echo(f"export {key}={value}")


def main() -> None:
    cli(prog_name="human3r")


if __name__ == "__main__":
    main()
