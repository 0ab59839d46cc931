"""The loop's own stages as Prefect tasks (the `improve-model` flow, flows/improve.py): check the selection, list the
videos to compare on, fine-tune, compare the two sides, write the report.

The other stages are the existing ones: scoring and the label build (`tasks.labels.stages`), the comparison runs
(`tasks.reconstruction.archive`) and the benchmark evaluations (`tasks.evaluation.pipeline`). Each `@task` here wraps
a plain function (`tasks.loop.selection`, `tasks.loop.verdict`, the fine-tuning's) that tests call directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import threading
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from storage.fs import open_root
from tasks.loop.options import CompareOptions
from tasks.loop.selection import CompareVideos, Selection, compare_videos, select
from tasks.options import ClusterOptions, ModelOptions

REPORT_NAME = "report.md"


@task(name="check-selection", cache_policy=NO_CACHE)
def check_selection(dataset: str, where: str) -> Selection:
    """What `where` selects among the scored tracks; a one-line error when nothing (nothing is built or trained)."""
    selection = select(dataset, where)
    get_run_logger().info(selection.line)
    return selection


@task(name="list-compare-videos", cache_policy=NO_CACHE)
def list_compare_videos(build: str, options: CompareOptions) -> tuple[CompareVideos, list]:
    """The videos both models reconstruct (`tasks.loop.selection.compare_videos`) and their listings (what
    `plan-videos` takes)."""
    from tasks.reconstruction.discover import list_sources

    videos = compare_videos(build, options.source, options.max_videos)
    get_run_logger().info("compare on %s", videos.line)
    return videos, list_sources(list(videos.uris))


_RAY_LOCK = threading.Lock()


def ensure_ray(cluster: ClusterOptions) -> None:
    """Connect to `cluster.ray_address` (or start the local cluster) unless connected: the stages call it when they
    have work, from several threads at once (the base side runs while the model trains)."""
    from tasks.reconstruction.actors import connect

    with _RAY_LOCK:
        connect(cluster.ray_address)


@contextlib.contextmanager
def ray_session():
    """Ray for the whole loop: whatever `ensure_ray` connected inside the block is shut down at its end (one
    cluster for every stage instead of one per stage; none at all when every stage finds its work done)."""
    import ray

    connected_before = ray.is_initialized()
    try:
        yield
    finally:
        if not connected_before and ray.is_initialized():
            ray.shutdown()


def finetune_options(build: str, model: ModelOptions, overrides: dict, out: str, cluster: ClusterOptions):
    """The fine-tuning run of the loop (`tasks.training.config.TrainOptions.for_labels`): `model`'s weights, preset
    and body model tuned on the build's train split (its val split held out when it has one), the run under
    ``<out>``, on the loop's Ray cluster, `overrides` (nested sections) merged over it. Checked here, before any
    label is built: a bad override is one `OptionsError` line."""
    from tasks.training.config import TrainOptions

    overrides = {**overrides, "cluster": {"ray_address": cluster.ray_address, **overrides.get("cluster", {})}}
    return TrainOptions.for_labels(build, base_checkpoint=model.checkpoint, body_model=model.body_model,
                                   preset=model.preset, output_root=out, overrides=overrides)


@dataclasses.dataclass(frozen=True)
class FineTuned:
    """The fine-tuning's product."""

    model_path: str  # the whole network (base + tuned parts) in our safetensors format
    model_version: str  # 'finetune-<base model_version>-<run key>'
    base_version: str
    run_dir: str
    steps: int
    metrics: dict

    @property
    def line(self) -> str:
        loss = self.metrics.get("train/loss")
        val = self.metrics.get("val/loss")
        figures = "".join(f", {name} {value:.4g}" for name, value in (("train loss", loss), ("val loss", val))
                          if isinstance(value, int | float))
        again = " (a finished run: its model reused)" if self.metrics.get("reused") else ""
        return f"{self.steps} optimiser steps{figures} -> {self.model_path} ({self.model_version}){again}"


@task(name="fine-tune", cache_policy=NO_CACHE)
def fine_tune_model(options, cluster: ClusterOptions, force: bool = False) -> FineTuned:
    """Fine-tune as `options` (`finetune_options`) says, on Ray Train on the loop's cluster (`ensure_ray`). The run is
    named by what changes the weights, and the build's folder by its content: a run whose model is written already
    is this very run, and its model is reused (`force`: resume it anyway, which only writes the model again)."""
    from tasks.training.plan import plan_run
    from tasks.training.run import fine_tune

    logger = get_run_logger()
    done = None if force else finished_model(plan_run(options))
    if done is not None:
        logger.info("fine-tuned before: %s", done.line)
        return done
    ensure_ray(cluster)
    result = fine_tune(options, progress=False)
    tuned = FineTuned(result.model_path, result.model_version, result.base_version, result.run_dir, result.steps,
                      {k: v for k, v in result.metrics.items() if isinstance(v, int | float | str)})
    logger.info("fine-tuned: %s", tuned.line)
    return tuned


def finished_model(plan) -> FineTuned | None:
    """The model a finished run of `plan` wrote (``<run>/model/finetuned.safetensors`` with the plan's
    model_version), or None. Local runs only (an s3:// run is resumed, which writes its model again)."""
    from tasks.training.product import MODEL_DIR, MODEL_NAME

    if "://" in plan.run_dir:
        return None
    meta = Path(plan.run_dir) / MODEL_DIR / f"{MODEL_NAME}.json"
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    path = meta.with_name(info.get("weights_file", ""))
    if info.get("model_version") != plan.model_version or not path.is_file():
        return None
    run = info.get("source", {}).get("run", {})
    return FineTuned(str(path), plan.model_version, plan.base_version, plan.run_dir, int(run.get("steps") or 0),
                     {"reused": 1})


@task(name="build-labels", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=[30])
def build_label_set(dataset: str, out: str, where: str, options, force: bool = False) -> dict:
    """The label build at `out` (`tasks.labels.stages.export_labels`), unless a complete one is there already: its
    folder is named by the selection's key (`Selection.build_key`), so an existing build is this very one."""
    info = Path(out) / "build.json"
    if info.is_file() and not force:
        counts = json.loads(info.read_text())["counts"]
        line = f"{counts['clips']} clips ({counts['frames']} frames) from {counts['tracks']} tracks of " \
               f"{counts['videos']} videos, built before -> {out}"
        get_run_logger().info(line)
        return {"line": line, "out": out, "counts": counts}
    from tasks.labels.stages import export_labels

    return export_labels.fn(dataset, out, where, options, True)


def tuned_model(model: ModelOptions, path: str) -> ModelOptions:
    """The base model's options with the fine-tuned weights (same body model, device, precision)."""
    return model.model_copy(update={"checkpoint": str(path), "preset": None})


@task(name="compare-models", cache_policy=NO_CACHE)
def compare_sides(base_root: str, tuned_root: str, base_version: str, tuned_version: str):
    """`tasks.evaluation.agreement.compare` of the two comparison datasets (base = A), each side's runs of its own
    model version; None when there is nothing to compare (every comparison video failed on a side: the failures are
    rows in its dataset), with a warning: the report then says so and the benchmarks still decide."""
    from tasks.evaluation.agreement import CompareError, Side, compare

    logger = get_run_logger()
    try:
        comparison = compare(Side(open_root(base_root), base_version), Side(open_root(tuned_root), tuned_version))
    except CompareError as err:
        logger.warning("not compared: %s", err)
        return None
    o = comparison.overall()
    logger.info("compared %d video(s): ATE %.4f m, joints %.1f mm, depth AbsRel %.4f", len(comparison.videos),
                o["ate_m"], o["joint_mm"], o["depth_abs_rel"])
    return comparison


@dataclasses.dataclass(frozen=True)
class ImproveReport:
    """What the loop returns: the verdict, where the report and the model are, the figures as plain data."""

    verdict: str
    report_path: str
    markdown: str
    base_version: str
    tuned_version: str
    model_path: str
    benchmarks: list[dict]  # one dict per benchmark metric and protocol (tasks.loop.verdict.MetricDelta + better)
    videos: list[dict]  # one dict per compared video (tasks.evaluation.agreement.VideoAgreement)
    overall: dict  # frame-weighted agreement over the videos


@task(name="improve-report", cache_policy=NO_CACHE)
def write_report(out: str, evaluations: str, base: tuple[str, str], tuned: tuple[str, str], model_path: str,
                 facts: list[str], benchmarks: tuple[str, ...], comparison, compare_line: str) -> ImproveReport:
    """The report (`tasks.loop.verdict.render`) written to ``<out>/report.md`` (and ``report.json``) in one rename
    each, as a Markdown artifact, and returned."""
    from tasks.evaluation.store import live_results
    from tasks.loop.verdict import metric_deltas, render, verdict

    live = live_results(open_root(evaluations))
    deltas = metric_deltas(live, base, tuned, benchmarks)
    markdown = render(title="improve-model: base against fine-tuned", facts=facts, deltas=deltas,
                      comparison=comparison, compare_line=compare_line, base=base[0], tuned=tuned[0])
    line = verdict(deltas, comparison, base=base[0], tuned=tuned[0])
    rows = [{**dataclasses.asdict(d), "label": d.label, "difference": d.difference, "relative_pct": d.relative_pct,
             "better": d.better} for d in deltas]
    videos = [v.to_dict() for v in comparison.videos] if comparison is not None else []
    overall = comparison.overall() if comparison is not None else {}
    report = ImproveReport(line, str(Path(out) / REPORT_NAME), markdown, base[0], tuned[0], model_path, rows, videos,
                           overall)
    _write_atomic(Path(out) / REPORT_NAME, markdown)
    _write_atomic(Path(out) / "report.json", json.dumps(_finite(dataclasses.asdict(report)), indent=1, default=str)
                  + "\n")
    create_markdown_artifact(key="improve-report", markdown=markdown, description=f"improve-model into {out}")
    get_run_logger().info(line)
    return report


def _finite(value):
    """`value` with NaN and infinities as None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
