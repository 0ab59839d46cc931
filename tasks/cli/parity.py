"""`human3r parity model|train|eval PACK_DIR`: check this project against the reference's recorded numbers.

Each subcommand reads a parity pack (a folder in the format of `tests/fixtures/<pack>`: the reference's inputs,
outputs and tolerances), prints the worst error per quantity against the pack's tolerances, and exits with code 1
when anything fails (0 when everything passes; 2 for a folder that is not such a pack).

* ``model``: the network (`human3r.parity`; also `python -m human3r.parity PACK_DIR`).
* ``eval``: the evaluation metrics (`tasks.evaluation.parity`): human, camera (evo), depth, the edge cases.
* ``train``: one training step: teacher forcing, every loss term, gradients, clipping and the AdamW update
  (`tasks.training.parity`; tests/fixtures/train_parity is such a pack).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tasks.errors import UsageError
from tasks.options import click_options
from tasks.training.parity import TrainParityOptions

_PACK = click.argument("pack_dir", type=click.Path(file_okay=False, path_type=Path))
_THREADS = click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
                        help="torch CPU threads (the packs were recorded with 2).")


def _require(pack: Path, *names: str) -> None:
    missing = [n for n in names if not (pack / n).exists()]
    if missing:
        raise UsageError(f"{pack} is not a parity pack of this kind: it lacks {', '.join(missing)}")


@click.group()
def parity() -> None:
    """Compare this project's numbers with the reference implementation's, from a parity pack."""


@parity.command("model")
@_PACK
@_THREADS
@click.option("--strict", is_flag=True, help="The README tolerances without platform-floor relaxations.")
@click.option("--case", "cases", multiple=True, help="Only this case (default, ttt3r, reset2); repeatable.")
@click.option("--compile", "compiled", is_flag=True,
              help="Check the torch.compile'd blocks (Human3R.compile_blocks) instead of eager: ~1 min more.")
def model(pack_dir: Path, threads: int, strict: bool, cases: tuple[str, ...], compiled: bool) -> None:
    """The network: every recorded output of the pack's cases (tests/fixtures/parity is one)."""
    _require(pack_dir, "config.json", "inputs.npz")
    argv = [str(pack_dir), "--threads", str(threads), *(["--strict"] if strict else []),
            *[a for c in cases for a in ("--case", c)], *(["--compile"] if compiled else [])]
    from human3r.parity import main

    sys.exit(main(argv))


@parity.command("eval")
@_PACK
def eval_(pack_dir: Path) -> None:
    """The evaluation metrics, reference protocol: every fixture of an eval pack (tests/fixtures/eval_parity)."""
    _require(pack_dir, "tolerances.json", "human/camcoord.npz", "camera/camera.json", "depth/depth.npz")
    from tasks.evaluation.parity import run

    sys.exit(0 if run(pack_dir) else 1)


TRAIN_FLAGS = {"--clip-norm": "clip_norm", "--checkpointing/--no-checkpointing": "gradient_checkpointing",
               "--body-model": "body_model", "--record": "record", "--threads": "threads", "--views": "views"}


@parity.command("train")
@_PACK
@click_options(TrainParityOptions, TRAIN_FLAGS, dest="options")
@click.option("--case", "cases", multiple=True, help="Only this case (e.g. basic); repeatable.")
def train(pack_dir: Path, options: TrainParityOptions, cases: tuple[str, ...]) -> None:
    """One training step: loss terms, gradients, clipping, the AdamW update (tests/fixtures/train_parity is a
    pack). About 10 s per case on 2 cores, plus ~20 s the first time to generate the pack's SMPL-X stand-in."""
    from tasks.training.pack import read_pack
    from tasks.training.parity import run_train_parity, summary

    read_pack(pack_dir)
    report = run_train_parity(pack_dir, options, cases=cases)
    click.echo(report.table())
    click.echo(summary(report))
    sys.exit(0 if report.ok else 1)
