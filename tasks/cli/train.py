"""`human3r train --config CONFIG.yaml`: fine-tune a checkpoint on Ray Train (`tasks.training.run.fine_tune`).

The config is `tasks.training.config.TrainOptions` as YAML (sections base, data, step, loop, cluster, tracking,
output; `--example` prints one with every default). Unknown keys, bad values, a base checkpoint of another preset,
a data folder in the wrong layout or a label build without images: one red line, exit 2, nothing run. A failed
run: exit 1. The same config run again resumes its run (Ray Train's checkpoints in the run's folder).
"""

from __future__ import annotations

import json

import click


def example_config() -> str:
    """The default config as YAML (the paper's recipe), with a placeholder base checkpoint and body model."""
    import yaml

    from tasks.training.config import TrainOptions

    data = TrainOptions().model_dump(mode="json")
    data["base"].update(checkpoint="human3r_672S.pth", preset="672S", body_model="models/smplx")
    return yaml.safe_dump(data, sort_keys=False, width=110)


@click.command("train", context_settings={"max_content_width": 110})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="The run's YAML config (see --example).")
@click.option("--example", is_flag=True, help="Print a config with every default (the paper's recipe) and exit.")
@click.option("--dry-run", is_flag=True, help="Check the config and inputs, print the plan (run name, folder, "
                                              "model version) and exit.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def train(config_path: str | None, example: bool, dry_run: bool, quiet: bool, as_json: bool) -> None:
    """Fine-tune Human3R on Ray Train: the trainable heads on BEDLAM and/or pseudo-label builds.

    \b
      human3r train --example > finetune.yaml        # the paper's recipe; edit base, data, output
      human3r train --config finetune.yaml --dry-run # check inputs, print the run's name and model version
      human3r train --config finetune.yaml           # train (again: resumes), then writes <run>/model/
    The fine-tuned model: <run>/model/finetuned.safetensors (model_version finetune-<base>-<key>), loadable with
    --checkpoint everywhere, and finetuned.pth in the reference's layout.
    """
    from tasks.errors import OptionsError

    if example:
        click.echo(example_config(), nl=False)
        return
    if not config_path:
        raise OptionsError("give --config CONFIG.yaml (write one with `human3r train --example > CONFIG.yaml`)")
    from tasks.training.config import read_config
    from tasks.training.plan import plan_run

    plan = plan_run(read_config(config_path))
    info = {"run": plan.name, "run_dir": plan.run_dir, "model_version": plan.model_version,
            "base_version": plan.base_version, "effective_batch": plan.options.effective_batch()}
    if dry_run:
        click.echo(json.dumps(info, indent=1) if as_json else "\n".join(f"{k}: {v}" for k, v in info.items()))
        return
    from tasks.training.run import TrainingFailed, run_plan

    try:
        result = run_plan(plan, progress=not quiet)
    except TrainingFailed as err:
        raise click.ClickException(str(err)) from None
    out = {"model_path": result.model_path, "model_version": result.model_version, "run_dir": result.run_dir,
           "pth_path": result.pth_path, "steps": result.steps,
           "metrics": {k: v for k, v in result.metrics.items() if k.startswith(("train/loss", "val/loss"))}}
    click.echo(json.dumps(out, indent=1) if as_json else "\n".join(f"{k}: {v}" for k, v in out.items()))
