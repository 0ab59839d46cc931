"""What a fine-tuning run is, decided once on the driver before any worker starts: `RunPlan`.

The run's key is a hash of everything that changes the trained weights: the base checkpoint's `model_version` (its
content hash), the data sources (a label build by its content too: a build rebuilt in its folder is other data),
the step, the loop's length / batch / accumulation / seed, and the number of
workers (it changes the batch). What does not change them (loader processes, checkpoint cadence, validation,
tracking, where the run lives) is left out, so a run re-planned with other such values resumes the same run.

* run name (default): ``finetune-<preset>-<key>``: Ray Train's run folder `<output.root>/<name>`; the same config
  resumes the same run;
* the fine-tuned model's ``model_version``: ``finetune-<base model_version>-<key>``, which names the base weights
  and the run (the dataset key of every row made with it).

Inputs are checked here, on the driver, so a bad config fails in one line before the cluster is asked for anything:
the base checkpoint (readable, of the configured preset), the body model, and every data source (its layout).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import OptionsError, UsageError
from tasks.training.config import TrainOptions

log = logging.getLogger(__name__)
KEY_LENGTH = 12
# loop fields that do not change the weights (cadence and reporting)
_LOOP_NOT_WEIGHTS = {"checkpoint_every", "keep_checkpoints", "validate_every", "log_every"}


@dataclass(frozen=True)
class RunPlan:
    """One fine-tuning run as the driver planned it (picklable: handed to every worker)."""

    options: TrainOptions
    base_version: str  # model_version of the base weights
    base_sha256: str | None  # their file's sha256 (None: untrained weights)
    preset: str  # the network's preset
    key: str  # hash of what changes the weights (module doc)
    name: str  # the run's name: Ray Train's run folder under `options.output.root`
    held_out: tuple = ()  # the validation sources that exist (derived splits a source lacks are left out)

    @property
    def model_version(self) -> str:
        """The fine-tuned model's dataset key: ``finetune-<base model_version>-<key>``."""
        return f"finetune-{self.base_version}-{self.key}"

    @property
    def run_dir(self) -> str:
        """`<output.root>/<name>`: a local folder (absolute) or ``s3://bucket/prefix/<name>`` (the endpoint, if any,
        stays in `output.root`)."""
        root = self.options.output.root
        if "://" in root:
            return f"s3://{_root(root).base}/{self.name}"
        return str(Path(root).expanduser().absolute() / self.name)

    @property
    def storage_path(self) -> str:
        """Ray Train's storage_path (the run's parent; inside `storage_filesystem` for s3://)."""
        root = self.options.output.root
        return _root(root).base if "://" in root else str(Path(root).expanduser().absolute())

    def storage_filesystem(self):
        """The pyarrow filesystem of an s3:// output (its endpoint and region as `storage.fs.open_root` reads
        them from the URI and the environment); None for a local folder."""
        root = self.options.output.root
        return _root(root).fs if "://" in root else None


def _root(uri: str):
    from storage.fs import open_root

    return open_root(uri)


def build_fingerprint(root: str) -> str | None:
    """sha256 of a local pseudo-label build's index and label files (``build.json`` without its time stamp,
    ``clips.parquet``, ``videos.parquet``, ``labels/*.parquet``): a build rebuilt in the same folder from other rows
    is other training data, so it must not share a run (nor a model_version) with the old one. None for a folder
    that is not there or not local (the data check reports it)."""
    folder = Path(root)
    if "://" in root or not folder.is_dir():
        return None
    digest = hashlib.sha256()
    facts = folder / "build.json"
    if facts.is_file():
        info = json.loads(facts.read_text())
        info.pop("created_at", None)
        digest.update(json.dumps(info, sort_keys=True).encode())
    for path in [folder / "clips.parquet", folder / "videos.parquet", *sorted(folder.glob("labels/*.parquet"))]:
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def run_key(options: TrainOptions, base_version: str) -> str:
    """The hash of what changes the weights (module doc), `KEY_LENGTH` hex digits."""
    data = []
    for source in options.data.sources:
        spec = source.model_dump(mode="json")
        if spec.get("source") == "labels":
            spec["content"] = build_fingerprint(source.root)
        data.append(spec)
    what = {
        "base": base_version,
        "precision": options.base.precision,
        "data": data,
        "step": options.step.model_dump(mode="json"),
        "loop": options.loop.model_dump(mode="json", exclude=_LOOP_NOT_WEIGHTS),
        "workers": options.cluster.num_workers,
    }
    text = json.dumps(what, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def plan_run(options: TrainOptions, *, check_data: bool = True) -> RunPlan:
    """Check the inputs (module doc) and plan the run. Raises a `UsageError` subclass naming the problem."""
    from human3r.weights import inspect_weights

    base = options.base
    if base.body_model is None:
        raise OptionsError("base.body_model: the SMPL-X losses need a body model (SMPLX_NEUTRAL.npz or its folder): "
                           "set it in the config or $HUMAN3R_BODY_MODEL")
    if "://" not in base.body_model and not os.path.exists(base.body_model):
        raise OptionsError(f"base.body_model: {base.body_model} does not exist")
    identity = inspect_weights(base.checkpoint, preset=base.preset, download=True)
    if base.preset is not None and identity.preset != base.preset:
        raise OptionsError(f"base.checkpoint {base.checkpoint} holds a {identity.preset} network, the config asks "
                           f"for {base.preset}: give a {base.preset} checkpoint or change base.preset")
    held_out = options.data.held_out()
    if check_data:
        check_sources(options)
        held_out = usable_held_out(options)
    key = run_key(options, identity.model_version)
    name = options.output.name or f"finetune-{identity.preset}-{key}"
    plan = RunPlan(options, identity.model_version, identity.sha256, identity.preset, key, name, held_out)
    check_run_folder(plan)
    return plan


def check_run_folder(plan: RunPlan) -> None:
    """A run folder holding checkpoints of another config (same `output.name`, other key) is refused."""
    from tasks.training.state import recorded_keys

    others = sorted(k for k in recorded_keys(plan.run_dir) if k and k != plan.key)
    if others:
        raise OptionsError(f"output {plan.run_dir} holds a run of another config (key {others[0]}, this config's is "
                           f"{plan.key}): give another output.name, or leave it empty")


def usable_held_out(options: TrainOptions) -> tuple:
    """The validation sources: given ones must load; a derived split a source lacks (a build without val, BEDLAM
    without Test/) is left out with a warning."""
    from tasks.training.data.mixture import build_source

    val = options.data.validation
    if val is None:
        return ()
    if val.sources is not None:
        for source in val.sources:
            build_source(source)
        return val.sources
    usable = []
    for source in options.data.held_out():
        try:
            build_source(source)
        except UsageError as err:
            log.warning("no validation on %s: %s", source.root, err)
            continue
        usable.append(source)
    return tuple(usable)


def check_sources(options: TrainOptions) -> None:
    """Build every training source once (their constructors check the layout and say what is missing)."""
    from tasks.training.data.mixture import build_source

    for source in options.data.sources:
        try:
            dataset = build_source(source)
        except UsageError:
            raise
        except (OSError, ValueError) as err:
            raise OptionsError(f"data source {source.source} at {source.root}: {err}") from None
        if len(dataset) == 0:
            raise OptionsError(f"data source {source.source} at {source.root} has no sample of "
                               f"{source.num_views} views: give more footage or fewer num_views")
