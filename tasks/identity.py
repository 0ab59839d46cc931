"""What makes a run's rows what they are: :class:`RunIdentity`, and nothing else.

A video (later: an evaluation sequence, a live segment) is done when the dataset holds a live run with the same
identity. The identity is

* the weights: ``model_version`` (the dataset key: preset and checkpoint hash), with the preset and the checkpoint's
  sha256 recorded beside it;
* the precision the network actually computed in (``float32``, ``bfloat16``, ``float16``; never ``auto``, which is
  resolved on the machine that computes);
* the SMPL-X body model, by content (``smplx-<sha256[:16]>``), or None: without one, joints and posed translations
  are left empty, so a run with a body model is not the run without;
* every option that changes the rows (`tasks.options.row_params`: buffer sizes and refusal limits left out).

It is one small frozen, picklable value built once where a run is planned (:meth:`RunIdentity.planned`), handed to
whoever computes (a Ray actor checks it against the network it holds with :meth:`RunIdentity.computed_by`), and
the source of ``runs.params_json`` / ``params_hash`` (:attr:`RunIdentity.params`) and of "is this run done"
(:meth:`RunIdentity.is_done`).

Runs recorded before this identity existed carried the refusal limits (``decode.max_side``,
``decode.max_error_ratio``) in their parameters and no body model: :meth:`RunIdentity.is_done` recognises them by
those keys and compares their parameters with the keys that change no row dropped, so an existing dataset is not
re-run for them (nor for its body model, which those runs did not record).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from typing import TYPE_CHECKING, Any

from storage import dataset
from storage import schema as S
from storage.writer import RunInfo
from tasks.errors import OptionsError
from tasks.options import ModelOptions, ReconstructOptions, not_in_params, row_params

if TYPE_CHECKING:
    from human3r.weights import ModelIdentity

log = logging.getLogger(__name__)

COMPUTE_PRECISIONS = ("float32", "bfloat16", "float16")  # what a network computes in (`auto` resolves to one)


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """What makes a run's rows what they are (see the module docstring)."""

    weights: ModelIdentity  # which network: model_version (the dataset key), preset, sha256, config
    precision: str  # dtype the network computes in: float32 | bfloat16 | float16
    body_model: str | None  # 'smplx-<sha256[:16]>' of the SMPL-X file; None = joints left empty
    options: ReconstructOptions  # the row-changing ones count; the rest rides along for the run

    def __post_init__(self) -> None:
        if self.precision not in COMPUTE_PRECISIONS:
            raise OptionsError(f"a run computes in one of {', '.join(COMPUTE_PRECISIONS)}, not {self.precision!r}")

    # ------------------------------------------------------------------------------------------------ building
    @classmethod
    def planned(cls, model: ModelOptions, options: ReconstructOptions, *,
                weights: ModelIdentity | None = None) -> RunIdentity:
        """The identity of a run with these options, as this machine can tell before loading the network: the
        weights' identity (`human3r.weights.inspect_weights`, or `weights` when already read), the precision resolved
        for `model.device` here (`auto` is measured on this machine: an actor on other hardware may compute in
        another, see :meth:`computed_by`), and the body model's content hash."""
        from human3r.weights import inspect_weights

        weights = weights or inspect_weights(model.checkpoint, preset=model.preset)
        return cls(weights, planned_precision(model.precision, model.device), body_model_version(model.body_model),
                   options)

    @classmethod
    def of_network(cls, model: Any, options: ReconstructOptions = ReconstructOptions(),
                   body_model: Any = None) -> RunIdentity:
        """The identity of the rows a loaded `model` (from `human3r.load_model`) and `body_model` (a
        `human3r.body.BodyModel`, or None) make with `options`: for Python callers that hold both already."""
        weights = getattr(model, "identity", None)
        if weights is None:
            raise OptionsError(f"{type(model).__name__} carries no weights identity: load it with "
                               "human3r.load_model(...)")
        path = getattr(body_model, "path", None)
        return cls(weights, precision_of(model), body_model_version(str(path)) if path is not None else None,
                   options)

    def computed_by(self, model: Any) -> RunIdentity:
        """This identity as the loaded `model` (a `Human3R` from `load_model`) makes it: the same weights, and the
        precision it computes in (which differs from the planned one only for `auto` on other hardware).

        Raises OptionsError when `model` carries other weights or does not say its precision.
        """
        ident = getattr(model, "identity", None)
        if ident is None or ident.model_version != self.model_version:
            found = getattr(ident, "model_version", "weights without an identity")
            raise OptionsError(f"the network holds {found}, the run was planned for {self.model_version}: give "
                               "every machine the same weights (a path, not 'auto' resolved differently)")
        precision = precision_of(model)
        if precision != self.precision:
            log.info("precision: planned %s, this machine computes in %s", self.precision, precision)
        return dataclasses.replace(self, precision=precision)

    # ------------------------------------------------------------------------------------------------ the key
    @property
    def model_version(self) -> str:
        return self.weights.model_version

    @property
    def model_key(self) -> tuple[str, str]:
        """(model_version, precision): what evaluation results are keyed by."""
        return self.model_version, self.precision

    @property
    def params(self) -> dict:
        """What `runs.params_json` records: the row-changing options, plus `precision` unless float32 and
        `body_model` when there is one (so a float32 run without a body model keeps the parameters, and hash, it
        had before either was recorded). `convert.world_points` is left out when 'head' (the only rule before the
        option existed)."""
        params = _option_params(self.options)
        if self.precision != "float32":
            params["precision"] = self.precision
        if self.body_model is not None:
            params["body_model"] = self.body_model
        return params

    @functools.cached_property
    def params_hash(self) -> str:
        """`runs.params_hash`: sha256 prefix of the canonical JSON of :attr:`params`."""
        return dataset.params_hash(self.params)

    def is_done(self, run: dict | None) -> bool:
        """Whether `run` (a live run, `storage.dataset.done_runs` value) was made with this identity: same model
        version and schema, and the same parameters: the same hash, or, for a run recorded before the identity
        existed, the same parameters once the keys that change no row are dropped (see the module docstring)."""
        if run is None or run[S.MODEL_VERSION] != self.model_version or run[S.SCHEMA_VERSION_COL] != S.SCHEMA_VERSION:
            return False
        if run[S.PARAMS_HASH] == self.params_hash:
            return True
        legacy = _legacy_params(run.get(S.PARAMS_JSON))
        if legacy is None:
            return False
        return legacy == {k: v for k, v in self.params.items() if k != "body_model"}

    def run_info(self, source_uri: str, run_id: str, started_at) -> RunInfo:
        """The `runs` row's description of a run with this identity (the writer adds counts and timings)."""
        return RunInfo(run_id=run_id, model_version=self.model_version, preset=self.weights.preset,
                       params=self.params, started_at=started_at, source_uri=source_uri,
                       checkpoint_sha256=self.weights.sha256)


# ------------------------------------------------------------------------------------------------------------------
# The parts
# ------------------------------------------------------------------------------------------------------------------


def _option_params(options: ReconstructOptions) -> dict:
    params = row_params(options)
    if options.convert.world_points == "head":  # the rule of every run before the option existed: hash unchanged
        del params["convert"]["world_points"]
    return params


def _legacy_params(params_json: str | None) -> dict | None:
    """The parameters of a run recorded before the identity existed (it holds keys that change no row), those keys
    dropped; None for any other run."""
    if not params_json:
        return None
    try:
        params = json.loads(params_json)
    except ValueError:
        return None
    found = False
    for *parents, name in not_in_params(ReconstructOptions):
        node = params
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and name in node:
            del node[name]
            found = True
    return params if found else None


def planned_precision(precision: str, device: str = "auto") -> str:
    """The dtype name a run with this `precision` option computes in on `device` ('auto' = CUDA when present), as
    this machine can tell (`auto` is measured here)."""
    import torch

    from human3r.precision import resolve_precision

    target = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return dtype_name(resolve_precision(precision, target))


def precision_of(model: Any) -> str:
    """The dtype name `model` computes in (`Human3R.compute_dtype`); an error when it does not say."""
    dtype = getattr(model, "compute_dtype", None)
    if dtype is None:
        raise OptionsError(f"{type(model).__name__} does not say which precision it computes in (no compute_dtype): "
                           "load it with human3r.load_model(..., precision=...)")
    return dtype_name(dtype)


def dtype_name(dtype: Any) -> str:
    """torch.bfloat16 -> 'bfloat16'."""
    return str(dtype).removeprefix("torch.")


def body_model_version(path: str | None) -> str | None:
    """``smplx-<sha256[:16]>`` of the SMPL-X file at `path` (file or folder; hash cached by path, size and mtime),
    None without one. A path that holds no usable file is a BodyModelError saying how to get one."""
    if path is None:
        return None
    from human3r.smplx_file import resolve_body_model_path
    from human3r.weights.identity import file_sha256

    return f"smplx-{file_sha256(resolve_body_model_path(path))[:16]}"
