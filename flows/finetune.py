"""`finetune-model`: fine-tune a checkpoint on Ray Train (BEDLAM and/or pseudo-label builds) and publish the model.

    prefect deployment run finetune-model/on-demand --watch -p config=configs/finetune.yaml   # see prefect.yaml
    python flows/finetune.py          # locally with the defaults (the paper's recipe: needs data/bedlam), no server

The run plans and checks its inputs first (a bad config fails before the cluster is asked for anything), then
trains (a task retried once: a retry resumes from the run's last checkpoint), writes the fine-tuned model
(`<run>/model/finetuned.safetensors`, model_version ``finetune-<base>-<key>``) and leaves a Markdown artifact with
the model, its version and the last metrics. `human3r train --config` does the same without Prefect.
"""

from __future__ import annotations

from prefect import flow, task

from tasks.training.config import TrainOptions


@task(name="plan-finetune")
def plan_finetune(config: str | None, options: TrainOptions):
    """Read the config (a file wins over `options`) and check the inputs: the run's plan."""
    from tasks.training.config import read_config
    from tasks.training.plan import plan_run

    return plan_run(read_config(config) if config else options)


@task(name="train-model", retries=1, retry_delay_seconds=10)
def train_model(plan) -> dict:
    """Train on Ray Train and write the model (a retry resumes the run from its last checkpoint)."""
    import dataclasses

    from prefect.artifacts import create_markdown_artifact

    from tasks.training.run import run_plan

    result = run_plan(plan, progress=True)
    metrics = "\n".join(f"| {k} | {v:.6g} |" for k, v in sorted(result.metrics.items())
                        if isinstance(v, int | float) and k.startswith(("train/loss", "val/")))
    create_markdown_artifact(key="finetuned-model", description="The fine-tuned model", markdown=(
        f"**{result.model_version}** ({result.steps} steps from {result.base_version})\n\n"
        f"- model: `{result.model_path}`\n- reference .pth: `{result.pth_path}`\n- run: `{result.run_dir}`\n\n"
        f"| metric | value |\n|---|---|\n{metrics}\n"))
    return dataclasses.asdict(result)


@flow(name="finetune-model", log_prints=False)
def finetune_model(config: str | None = None, options: TrainOptions = TrainOptions()) -> dict:
    """Fine-tune the base checkpoint as the config says; returns the model's path, version, run folder, metrics.

    Args:
        config: a YAML training config file (`human3r train --example`); when given, `options` is ignored.
        options: the config itself as parameters (sections base, data, step, loop, cluster, tracking, output).
    """
    plan = plan_finetune(config, options)
    return train_model(plan)


if __name__ == "__main__":
    finetune_model()
