"""What makes an evaluation's results what they are: :class:`EvalIdentity`.

A sequence of a benchmark is evaluated once per identity and protocol (the ``evaluations`` table's key: model
version, precision, parameters hash, protocol, benchmark, sequence). The identity is

* the weights (``model_version``, with the preset and the checkpoint's sha256 beside it) and the precision the
  network computes in (never ``auto``), as for a video's run (`tasks.identity`);
* the SMPL-X body model and the SMPL files (conversion matrix, joint regressors, gendered SMPL / SMPL-X models),
  by content: they make the predicted and ground-truth joints of the human benchmarks;
* the benchmark's protocol as it ran (working size, reset interval, TTT3R, frame selection; `BENCHMARK_PROTOCOLS`),
  and ``max_frames`` when a smoke run cut the sequences short.

It is a small frozen, picklable value built once where an evaluation is planned (:meth:`EvalIdentity.planned`) and
handed to whoever computes; `params(benchmark)` is what ``evaluations.params_json`` records.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import dataset
from tasks.errors import OptionsError
from tasks.evaluation.benchmarks.protocol import BenchmarkProtocol, benchmark_protocol
from tasks.identity import COMPUTE_PRECISIONS, body_model_version, planned_precision, precision_of
from tasks.options import ModelOptions

if TYPE_CHECKING:
    from human3r.weights import ModelIdentity


@dataclasses.dataclass(frozen=True)
class EvalIdentity:
    """What makes an evaluation's rows what they are (see the module docstring)."""

    weights: ModelIdentity  # which network (model_version, preset, sha256, config)
    precision: str  # float32 | bfloat16 | float16: what the network computes in
    body_model: str | None  # 'smplx-<sha256[:16]>' of the SMPL-X file (human benchmarks need one)
    smpl_files: str | None  # 'smpl-<sha256[:16]>' over the SMPL files used (human benchmarks need them)
    max_frames: int | None = None  # sequences cut to their first N frames (smoke runs); None: whole sequences

    def __post_init__(self) -> None:
        if self.precision not in COMPUTE_PRECISIONS:
            raise OptionsError(f"an evaluation computes in one of {', '.join(COMPUTE_PRECISIONS)}, not "
                               f"{self.precision!r}")

    @classmethod
    def planned(cls, model: ModelOptions, smpl_files: str | None, *, max_frames: int | None = None,
                weights: ModelIdentity | None = None) -> EvalIdentity:
        """The identity of an evaluation with these options, as this machine can tell before loading the network
        (weights from their file, precision resolved here, body model and SMPL files by content)."""
        from human3r.weights import inspect_weights

        weights = weights or inspect_weights(model.checkpoint, preset=model.preset)
        return cls(weights, planned_precision(model.precision, model.device), body_model_version(model.body_model),
                   smpl_files_version(smpl_files) if smpl_files else None, max_frames)

    def computed_by(self, model: Any) -> EvalIdentity:
        """This identity as the loaded `model` makes it (its precision); OptionsError when it carries other weights."""
        ident = getattr(model, "identity", None)
        if ident is None or ident.model_version != self.model_version:
            found = getattr(ident, "model_version", "weights without an identity")
            raise OptionsError(f"the network holds {found}, the evaluation was planned for {self.model_version}: give "
                               "every machine the same weights")
        return dataclasses.replace(self, precision=precision_of(model))

    @property
    def model_version(self) -> str:
        return self.weights.model_version

    @property
    def working_size(self) -> int:
        """Long side of the network's working image (512 for the released models)."""
        return self.weights.config.image_size

    def params(self, benchmark: str | BenchmarkProtocol) -> dict:
        """What ``evaluations.params_json`` records for `benchmark`: its protocol as it runs here, the body model
        and SMPL files (human benchmarks), precision unless float32, max_frames when set."""
        bp = benchmark if isinstance(benchmark, BenchmarkProtocol) else benchmark_protocol(benchmark)
        params: dict[str, Any] = {
            "benchmark": {"working_size": self.working_size, "use_ttt3r": bp.use_ttt3r,
                          "reset_interval": bp.reset_interval, "frame_stride": bp.frame_stride,
                          "n_frames": bp.n_frames, "first_frame": bp.first_frame},
        }
        if bp.kind == "human":
            params["body_model"] = self.body_model
            params["smpl_files"] = self.smpl_files
        if self.precision != "float32":
            params["precision"] = self.precision
        if self.max_frames is not None:
            params["max_frames"] = self.max_frames
        return params

    def params_hash(self, benchmark: str | BenchmarkProtocol) -> str:
        return _hash(dataset.canonical_json(self.params(benchmark)))

    def params_json(self, benchmark: str | BenchmarkProtocol) -> str:
        return dataset.canonical_json(self.params(benchmark))

    def describe(self) -> str:
        """One line for logs and progress: model, precision, what it uses."""
        extra = f", first {self.max_frames} frames per sequence" if self.max_frames else ""
        return f"{self.model_version} ({self.precision}{extra})"


@functools.lru_cache(maxsize=256)
def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SMPLX_GENDERED = {"male": ("SMPLX_MALE.npz",), "female": ("SMPLX_FEMALE.npz",)}  # RICH's ground truth is SMPL-X


def smpl_file_list(folder: str | os.PathLike) -> list[Path]:
    """The SMPL files of `folder` an evaluation reads: the conversion files, the gendered SMPL models and, when
    present, the gendered SMPL-X models (RICH's ground truth), in a fixed order."""
    from tasks.evaluation.benchmarks.smpl_files import (
        H36M_REGRESSOR_NAMES,
        SMPL_MODEL_NAMES,
        SMPLX2SMPL_NAMES,
        find_smpl_file,
        resolve_smpl_folder,
    )

    root = resolve_smpl_folder(folder)
    names = [SMPLX2SMPL_NAMES, H36M_REGRESSOR_NAMES, *SMPL_MODEL_NAMES.values(), *SMPLX_GENDERED.values()]
    return [p for n in names if (p := find_smpl_file(root, n)) is not None]


def smpl_files_version(folder: str | os.PathLike) -> str:
    """``smpl-<sha256[:16]>`` over the names and contents of the SMPL files of `folder` (hashes cached by path,
    size and mtime, as the weights' are)."""
    from human3r.weights.identity import file_sha256

    digest = hashlib.sha256()
    for path in smpl_file_list(folder):
        digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return f"smpl-{digest.hexdigest()[:16]}"
