"""`human3r reconstruct` and `human3r demo`: the pipeline from the command line.

Flags are built from the option models of `tasks.options` (defaults and help written there once). Registered
lazily on the `human3r` group (`tasks.cli.main`), which turns expected errors into one line.
"""

from __future__ import annotations

import sys
import time

import click

from tasks.cli.main import print_table
from tasks.options import ModelOptions, ReconstructOptions, click_options

DELETE_EVERY = 100  # committed videos between two deletes of the rows of the runs they replaced (and at the end)

MODEL_FLAGS = {"--checkpoint": "checkpoint", "--preset": "preset", "--body-model": "body_model", "--device": "device",
               "--precision": "precision", "--compile/--no-compile": "compile"}
RECONSTRUCT_FLAGS = {
    "--stride": "decode.stride",
    "--max-frames": "decode.max_frames",
    "--start": "decode.start_s",
    "--end": "decode.end_s",
    "--max-side": "decode.max_side",
    "--reset-interval": "reset_interval",
    "--ttt3r/--no-ttt3r": "use_ttt3r",
    "--points-per-frame": "convert.points_per_frame",
    "--conf-threshold": "convert.conf_threshold",
    "--world-points": "convert.world_points",
}


@click.command(context_settings={"max_content_width": 110})
@click.argument("videos", nargs=-1, required=True)
@click.option("--out", "root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True,
              help="Dataset root to write into (folder or s3://bucket/prefix).")
@click_options(ModelOptions, MODEL_FLAGS, dest="model")
@click_options(ReconstructOptions, RECONSTRUCT_FLAGS, dest="options")
@click.option("--force", is_flag=True, help="Redo videos the dataset already holds with this model and parameters.")
def reconstruct(videos: tuple[str, ...], root: str, model: ModelOptions, options: ReconstructOptions,
                force: bool) -> None:
    """Reconstruct VIDEOS (files, folders, globs, s3://bucket/key or s3://bucket/prefix/) into the dataset at --out.

    \b
    Every video is probed first (header, content hash, a frame size the network can process), and the model is
    loaded only if there is something to do. Each video is streamed (constant memory), written atomically, and
    skipped on a re-run with the same weights, precision, body model and row-changing options (--force redoes
    it; --max-side never re-runs a video). A video that cannot be used becomes a row in the failures table with a
    one-line reason and the others go on; the exit code is 1 if any video failed. $HUMAN3R_CHECKPOINT and
    $HUMAN3R_BODY_MODEL are used when --checkpoint auto / no --body-model.
    Example:
      human3r reconstruct clips/*.mp4 --out data/archive --checkpoint human3r_896L.pth --stride 2
    """
    from rich.console import Console

    from human3r.body import load_body_model
    from human3r.weights import load_model
    from storage.fs import open_root
    from tasks.identity import RunIdentity
    from tasks.reconstruction.discover import list_sources
    from tasks.reconstruction.outcomes import summarize
    from tasks.reconstruction.plan import plan
    from tasks.reconstruction.video import resolve_device

    console = Console(stderr=True, soft_wrap=True)
    listed = list_sources(videos)
    dataset = open_root(root)
    device = resolve_device(model.device)
    identity = RunIdentity.planned(model, options)
    body = load_body_model(model.body_model) if model.body_model else None
    planned = plan(listed, dataset, identity, force=force)
    if identity.weights.is_untrained:
        console.print(f"[bold yellow]UNTRAINED WEIGHTS ({identity.weights.name}): a smoke run; every row is marked "
                      f"model_version={identity.model_version}[/]")
    for s in planned.done:
        if s.status == "skipped":
            console.print(f"skipped {s.source_uri}: {s.message} (--force redoes it)")
        else:
            console.print(f"[red]failed {s.source_uri}[/] at {s.stage}: {s.message}")
    summaries = list(planned.done)
    if planned.pending:
        network = load_model(model.checkpoint, preset=model.preset, device=device, precision=model.precision)
        network = network.compile_blocks() if model.compile else network
        identity = identity.computed_by(network)  # the precision the network computes in ('auto' resolved)
        summaries += _reconstruct_all(planned.pending, planned.root, network, identity, body, force, console)
    _delete_replaced(planned.root, console, wait=True)
    order = {item.uri: i for i, item in enumerate(listed)}
    report = summarize(sorted(summaries, key=lambda s: order.get(s.source_uri, len(order))), root)
    _print_report(report)
    if report.failed:
        sys.exit(1)


def _reconstruct_all(videos, dataset, network, identity, body, force, console) -> list:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from storage.media import file_name
    from tasks.reconstruction.video import reconstruct_video

    summaries, committed = [], 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        for video in videos:
            task = progress.add_task(file_name(video.path)[:40], total=None, fps=0.0)
            t0 = time.perf_counter()

            def update(done, expected, task=task, t0=t0):
                progress.update(task, completed=done, total=expected,
                                fps=done / max(time.perf_counter() - t0, 1e-9))

            summary = reconstruct_video(video, dataset, network, identity, body_model=body, force=force,
                                        progress=update)
            progress.update(task, visible=False)
            summaries.append(summary)
            committed += summary.status == "ok"
            if summary.status == "ok" and committed % DELETE_EVERY == 0:
                _delete_replaced(dataset, console, wait=False)
            if summary.status == "failed":
                console.print(f"[red]failed {video.path}[/] at {summary.stage}: {summary.error_type}: "
                              f"{summary.message}")
            elif summary.status == "ok":
                console.print(f"[green]done[/] {video.path}: {summary.frames} frames, {summary.tracks} people, "
                              f"{summary.points:,} points in {summary.seconds:.1f} s")
    return summaries


def _delete_replaced(dataset, console, *, wait: bool) -> None:
    """Delete the rows of the runs this command replaced (and any a crashed run left), so that plain Delta readers
    see the live rows; a failure here loses nothing (the next run or `human3r vacuum` catches up)."""
    from storage.deletes import delete_replaced
    from storage.errors import StorageError

    try:
        report = delete_replaced(dataset, wait=wait)
    except (StorageError, OSError) as err:
        console.print(f"[yellow]the rows of replaced runs are still in the files ({err}); the next run or "
                      f"`human3r vacuum` deletes them[/]")
        return
    if report.runs:
        console.print(report.line())


def _print_report(report) -> None:
    import pyarrow as pa

    print_table(pa.Table.from_pylist(report.rows), max_rows=1000)
    click.echo(report.line)


@click.command()
@click.option("--footage", default="data/demo-footage", show_default=True,
              help="Folder of the demo videos (3 sample clips are generated into it if missing).")
@click.option("--dataset", default="data/demo", show_default=True, help="Dataset root the demo writes.")
@click.option("--checkpoint", default="auto", show_default=True,
              help="Weights; 'auto' ($HUMAN3R_CHECKPOINT, then the Hugging Face cache) falls back to untrained:tiny "
                   "(loudly) when none are installed.")
@click.option("--home", default=None, envvar="HUMAN3R_HOME", help="State folder for the local services "
              "[default: .human3r]")
@click.option("--port", type=int, default=None, envvar="HUMAN3R_PREFECT_PORT", help="Prefect server port [4200].")
@click.option("--timeout", "timeout_s", default=1800, show_default=True, type=click.IntRange(min=1),
              help="Seconds to wait for the run.")
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
    from tasks.ops.services import Services

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
    click.echo("deployed prefect.yaml: reconstruct-archive/{demo,nightly,on-new-footage}, "
               "compact-dataset/after-nightly")
    params = {"source": footage, "dataset": dataset, "model": {"checkpoint": checkpoint}}
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
