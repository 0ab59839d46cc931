"""`human3r eval`: benchmarks (`eval BENCHMARK`, the default subcommand `run`), the paper's tables (`eval report`)
and agreement between two models without ground truth (`eval compare`).

Flags are built from the option models (`tasks.options.ModelOptions`, `ClusterOptions`,
`tasks.evaluation.options.EvalOptions`). Registered lazily on the `human3r` group (`tasks.cli.main`), which turns
expected errors (unknown benchmark, missing files, wrong format) into one red line and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tasks.cli.main import ROOT_HELP, print_table
from tasks.cli.reconstruct import MODEL_FLAGS
from tasks.evaluation.options import EvalOptions
from tasks.options import ClusterOptions, ModelOptions, click_options

EVAL_FLAGS = {"--protocol": "protocol", "--smpl-files": "smpl_files", "--max-frames": "max_frames"}
CLUSTER_FLAGS = {"--actors": "num_actors", "--ray-address": "ray_address", "--gpus-per-actor": "gpus_per_actor",
                 "--cpus-per-actor": "cpus_per_actor", "--torch-threads": "torch_threads",
                 "--sequence-timeout": "video_timeout_s"}


class _EvalGroup(click.Group):
    """`human3r eval BENCHMARK ...` is `human3r eval run BENCHMARK ...`: a first word that is not a subcommand is
    a benchmark."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_EvalGroup, context_settings={"max_content_width": 110})
def eval_() -> None:
    """Evaluate models on the paper's benchmarks, report the tables, compare two models on your own footage.

    \b
      human3r eval emdb2 --data /data/EMDB --out data/evals --checkpoint human3r_896L.pth \\
          --body-model models/smplx --smpl-files models/smpl_files       # = human3r eval run emdb2 ...
      human3r eval report --root data/evals --out report.md
      human3r eval compare --root data/archive-fp32 --root data/archive-bf16
    Benchmarks: 3dpw, emdb1, emdb2, rich, tum (tum_50 ... tum_1000), bonn (bonn_50 ... bonn_500).
    """


@eval_.command("run", context_settings={"max_content_width": 110})
@click.argument("benchmark")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="The benchmark's folder, laid out as its release (see the evaluation docs for each benchmark).")
@click.option("--out", "root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True,
              help="Dataset root the results go to (the evaluations table; folder or s3://bucket/prefix).")
@click_options(ModelOptions, MODEL_FLAGS, dest="model")
@click_options(EvalOptions, EVAL_FLAGS, dest="options")
@click.option("--sequence", "sequences", multiple=True, help="Only this sequence (repeatable); default: all.")
@click_options(ClusterOptions, CLUSTER_FLAGS, dest="cluster")
@click.option("--force", is_flag=True, help="Evaluate again sequences the dataset holds for this model.")
def run(benchmark: str, data: Path, root: str, model: ModelOptions, options: EvalOptions,
        sequences: tuple[str, ...], cluster: ClusterOptions, force: bool) -> None:
    """Evaluate a model on BENCHMARK (3dpw, emdb1, emdb2, rich, tum, tum_<N>, bonn, bonn_<N>) read from --data.

    \b
    Each sequence runs through the network as the reference's evaluation runs it (the network's working size,
    TTT3R, the benchmark's reset interval: 100 frames, 50 for EMDB-2, never for RICH and Bonn), over its frames
    in order; its metrics are the reference's (--protocol reference, the default: the published numbers,
    defects included) or with those defects fixed (corrected; both: one network pass, both scores). Every
    sequence's rows land in the evaluations table of --out at once, then the benchmark's average. A sequence
    already evaluated for this model, precision and parameters is skipped, so a killed evaluation resumes and a
    second run evaluates nothing new (--force redoes them); a sequence that fails becomes a row with the reason
    and the others go on (exit code 1).
    \b
    Human benchmarks need the SMPL-X body model (--body-model or $HUMAN3R_BODY_MODEL) and the SMPL files
    (--smpl-files or $HUMAN3R_SMPL_FILES: smplx2smpl.pkl, J_regressor_h36m.npy, SMPL_NEUTRAL/MALE/FEMALE; RICH
    also SMPLX_MALE/FEMALE.npz). Sequences run in this process with one network, or on a Ray actor pool (one
    replica per GPU) with --actors N > 1 or --ray-address. Then: human3r eval report --root <--out>.
    """
    from rich.console import Console

    from storage.dataset import init_dataset
    from storage.fs import open_root
    from tasks.evaluation.benchmarks import benchmark_protocol
    from tasks.evaluation.execute import evaluate_here, evaluate_on_pool
    from tasks.evaluation.identity import EvalIdentity
    from tasks.evaluation.runner import check_inputs, plan_evaluation, summarize, write_averages

    console = Console(stderr=True, soft_wrap=True)
    bp = benchmark_protocol(benchmark)  # an unknown name is one line naming the known ones
    if not data.is_dir():
        raise click.BadParameter(f"{data} is not a folder: give the {benchmark} release folder", param_hint="--data")
    if sequences:
        options = options.model_copy(update={"sequences": tuple(sequences)})
    identity = EvalIdentity.planned(model, options.smpl_files if bp.kind == "human" else None,
                                    max_frames=options.max_frames)
    check_inputs(bp, identity, options, model.body_model)
    dataset = init_dataset(open_root(root))
    plan = plan_evaluation(benchmark, str(data), dataset, identity, options, force=force)
    if identity.weights.is_untrained:
        console.print(f"[bold yellow]UNTRAINED WEIGHTS ({identity.weights.name}): a smoke run; every row is marked "
                      f"model_version={identity.model_version}[/]")
    console.print(f"{benchmark}: {len(plan.names)} sequence(s), {len(plan.pending)} to evaluate, {len(plan.done)} "
                  f"already evaluated for {identity.describe()} ({', '.join(plan.protocols)})"
                  + (f"; {len(plan.missing)} listed but absent from {data}" if plan.missing else ""))

    def report(outcome) -> None:
        if outcome.status == "failed":
            console.print(f"[red]failed {outcome.sequence}[/]: {outcome.error_type}: {outcome.message}")
        elif outcome.status == "ok":
            console.print(f"[green]done[/] {outcome.sequence}: {outcome.frames} frames in {outcome.seconds:.1f} s")

    on_pool = cluster.ray_address is not None or cluster.num_actors > 1
    if on_pool:
        outcomes = evaluate_on_pool(plan, dataset.uri, model, cluster, force=force, console=console, report=report)
    else:
        outcomes = evaluate_here(plan, dataset, model, force=force, console=console, report=report)
    averages = write_averages(dataset, plan)
    for line in averages:
        console.print(line)
    import pyarrow as pa

    summary = summarize(plan, outcomes, averages, root)
    print_table(pa.Table.from_pylist(summary.rows), max_rows=1000)
    click.echo(f"{summary.line} (the tables: human3r eval report --root {root})")
    if summary.failed:
        sys.exit(1)


@eval_.command("report")
@click.option("--root", required=True, envvar="HUMAN3R_DATASET", show_envvar=True, help=ROOT_HELP)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report to this Markdown file.")
def report(root: str, out: Path | None) -> None:
    """The paper's tables (local and global human motion, camera pose, video depth) with the official figures
    beside every evaluated model (model version, precision, protocol), the corrected - reference difference where
    both exist, and what each average covers. Units: mm, % (RTE), 10 m/s^3 (jitter), m, degrees."""
    from storage.dataset import check_dataset
    from storage.fs import open_root
    from tasks.evaluation.report import build_report

    dataset = open_root(root)
    check_dataset(dataset)
    text = build_report(dataset)
    click.echo(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
        click.echo(f"written to {out}", err=True)


@eval_.command("compare")
@click.option("--root", "roots", multiple=True, required=True,
              help="Dataset root of side A, then of side B (twice; or once with two --model-version).")
@click.option("--model-version", "versions", multiple=True,
              help="Compare the latest runs of this model version (give two with one --root, or one per --root).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the comparison to this Markdown file.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv", "json"]), default="markdown",
              show_default=True, help="What to print: the Markdown report, or one row per video.")
def compare(roots: tuple[str, ...], versions: tuple[str, ...], out: Path | None, fmt: str) -> None:
    """How far model B's output is from model A's on the same videos, without ground truth: camera paths (ATE after
    Sim(3), evo), people (tracks matched by head distance: mean joint distance, same people counts) and scene depth
    (AbsRel and delta < 1.25 over 16-pixel cells of the stored points). For what bfloat16, --compile, a smaller
    preset or a fine-tune changes on your own footage:

    \b
      human3r reconstruct clips/ --out data/fp32 --checkpoint human3r_896L.pth
      human3r reconstruct clips/ --out data/bf16 --checkpoint human3r_896L.pth --precision bfloat16
      human3r eval compare --root data/fp32 --root data/bf16 --out agreement.md
    """
    import pyarrow as pa

    from storage.dataset import check_dataset
    from storage.fs import open_root
    from tasks.errors import OptionsError
    from tasks.evaluation.agreement import Side, to_markdown
    from tasks.evaluation.agreement import compare as compare_sides

    if len(roots) > 2 or len(versions) > 2 or (len(roots) == 1 and len(versions) != 2) or (
            len(roots) == 2 and len(versions) == 1):
        raise OptionsError("give --root A --root B (their live runs), --root R --model-version X --model-version Y, "
                           "or two roots with one --model-version each")
    roots2 = roots if len(roots) == 2 else roots * 2
    sides = []
    for i in range(2):
        dataset = open_root(roots2[i])
        check_dataset(dataset)
        sides.append(Side(dataset, versions[i] if versions else None))
    result = compare_sides(*sides)
    text = to_markdown(result)
    if fmt == "markdown":
        click.echo(text)
    else:
        print_table(pa.Table.from_pylist([v.to_dict() for v in result.videos]), fmt=fmt)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(f"written to {out}", err=True)
