"""Run options, defined once: what the CLI, the Prefect flow, prefect.yaml and the Ray actors all take.

Each option is a field of a frozen pydantic model with its default, bounds and one-line description written here
and nowhere else. The flow takes the models as typed parameters (Prefect validates them, and a deployment sets
nested fields: ``options: {decode: {stride: 2}}``); the CLI builds its flags from the same fields
(:func:`click_options`), and the actors receive the objects themselves.

* :class:`ReconstructOptions` (decode, points, state update): what is read of a video and how it is turned into
  rows. The fields that change the rows are part of a run's identity (`tasks.identity.RunIdentity`: with the
  model, the precision and the body model they make ``runs.params_json`` and decide re-runs); the others (buffer
  sizes, refusal limits) are marked ``NOT_IN_PARAMS`` and never force a re-run.
* :class:`ModelOptions`: which weights and body model, on which device. ``$HUMAN3R_BODY_MODEL`` is read here, once,
  when no body model is given, so the CLI, the flow and the Ray actors get the same answer.
* :class:`ClusterOptions`: where and how many model replicas run.
"""

from __future__ import annotations

import functools
import os
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.errors import OptionsError

WORLD_POINTS = ("pose", "head")  # ConvertOptions.world_points

# Field metadata: the option does not change the rows (left out of a run's identity, so it never forces a re-run).
NOT_IN_PARAMS = {"in_params": False}
BODY_MODEL_ENV = "HUMAN3R_BODY_MODEL"  # = human3r.smplx_file.BODY_MODEL_ENV (not imported: that pulls in torch)


def with_body_model(data: Any) -> Any:
    """Options data (a dict) with its `body_model` resolved once, where options are built: the given path, else
    $HUMAN3R_BODY_MODEL, else None; a local path made absolute (workers and actors run in other folders)."""
    if not isinstance(data, dict):
        return data
    path = data.get("body_model") or os.environ.get(BODY_MODEL_ENV) or None
    if isinstance(path, str) and "://" not in path:
        path = os.path.abspath(os.path.expanduser(path))
    return {**data, "body_model": path}


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecodeOptions(_Options):
    """Which frames of a video are read."""

    stride: int = Field(1, ge=1, description="Keep every N-th decoded frame.")
    max_frames: int | None = Field(None, ge=1, description="Stop after this many kept frames per video.")
    start_s: float | None = Field(None, ge=0, description="Skip frames before this time (seconds).")
    end_s: float | None = Field(None, gt=0, description="Stop at this time (seconds).")
    max_side: int = Field(8192, ge=16, description="Refuse videos larger than this many pixels per side.",
                          json_schema_extra=NOT_IN_PARAMS)  # refuses a video or not: the rows stay the same
    max_error_ratio: float = Field(0.05, ge=0, le=1,
                                   description="Fail a video when more than this fraction of packets is unreadable.",
                                   json_schema_extra=NOT_IN_PARAMS)  # fails a video or not: the rows stay the same
    queue_size: int = Field(8, ge=1, description="Decoded frames buffered ahead of the model.",
                            json_schema_extra=NOT_IN_PARAMS)

    @model_validator(mode="after")
    def _window(self) -> DecodeOptions:
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"the end ({self.end_s} s) must come after the start ({self.start_s} s)")
        return self


class ConvertOptions(_Options):
    """Which scene points of a frame are kept."""

    points_per_frame: int = Field(2000, ge=0, description="Scene points kept per frame (0 = none).")
    conf_threshold: float = Field(1.5, ge=0, description="Minimum point confidence (confidence is >= 1).")
    seed: int = Field(0, description="Seed of the per-frame point subsampling.")
    world_points: str = Field("pose", description="How scene points reach the world frame: 'pose' = the camera-"
                                                  "frame pointmap moved by the predicted camera pose (the reference "
                                                  "demo's rule; the world-view head does not run), 'head' = the "
                                                  "network's world-view pointmap head (~10% more compute).")

    @field_validator("world_points")
    @classmethod
    def _world_points(cls, value: str) -> str:
        if value not in WORLD_POINTS:
            raise ValueError("must be pose or head")
        return value


class ReconstructOptions(_Options):
    """Every parameter that changes the rows of a video (and a few buffer sizes and limits that do not)."""

    decode: DecodeOptions = DecodeOptions()
    convert: ConvertOptions = ConvertOptions()
    reset_interval: int | None = Field(None, ge=1, description="Re-initialise the state every N frames (long "
                                                              "videos); poses are chained across resets.")
    use_ttt3r: bool = Field(False, description="TTT3R gated state update instead of CUT3R's overwrite.")
    chunk_frames: int = Field(64, ge=1, description="Frames of rows buffered before they are written.",
                              json_schema_extra=NOT_IN_PARAMS)


class ModelOptions(_Options):
    """Which network and body model, and where they run."""

    checkpoint: str = Field("auto", description="Weights: a .pth/.safetensors path, 'auto' ($HUMAN3R_CHECKPOINT, "
                                                "then the Hugging Face cache), 'hf:faneggg/human3r/<file>', or "
                                                "'untrained:<preset>[:seed]' for a smoke run with random weights.")
    preset: str | None = Field(None, description="672S, 672B, 672L, 896L or tiny (which file 'auto' prefers).")
    body_model: str | None = Field(None, description="SMPL-X body model (SMPLX_NEUTRAL.npz or its folder); empty = "
                                                     "$HUMAN3R_BODY_MODEL if set; without one, joints are left "
                                                     "empty.")
    device: str = Field("auto", description="auto (the GPU when there is one), cpu, cuda, cuda:1, ...")
    precision: str = Field("float32", description="float32 (the reference's numbers), bfloat16 (fast on GPUs and "
                                                  "AMX/AVX512-BF16 CPUs; outputs move by ~1-5%), float16 (GPUs), "
                                                  "or auto (measured on the machine; see README 'Speed and "
                                                  "precision').")

    compile: bool = Field(False, description="torch.compile the network's blocks (exact: parity holds): ~40 s of "
                                             "compilation per process and working size, then 2-8% less time per "
                                             "frame on a CPU, more on GPUs; worth it for archives, not one clip.")

    @field_validator("precision")
    @classmethod
    def _precision(cls, value: str) -> str:
        if value not in ("float32", "bfloat16", "float16", "auto"):
            raise ValueError("must be float32, bfloat16, float16 or auto")
        return value

    @model_validator(mode="before")
    @classmethod
    def _body_model(cls, data: Any) -> Any:
        """No body model given: $HUMAN3R_BODY_MODEL, read here where the options are built (the actors get these
        options, not this environment). A local path becomes absolute (the actors' working folder differs)."""
        return with_body_model(data)


class ClusterOptions(_Options):
    """Where the model replicas run (the archive pipeline)."""

    ray_address: str | None = Field(None, description="An existing Ray cluster ('auto', 'host:6379', 'ray://...'); "
                                                      "empty = start a local one.")
    num_actors: int = Field(1, ge=1, description="Model replicas.")
    videos_per_actor: int = Field(1, ge=1, description="Videos a replica takes at once; their frames go through the "
                                                       "network together in batched forwards (more throughput per "
                                                       "GPU, more memory).")
    gpus_per_actor: float | None = Field(None, ge=0, description="GPUs per replica (fractions pack several per "
                                                                 "GPU); empty = 1 if the cluster has GPUs, else 0.")
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs per replica (keep the total below the cluster's).")
    torch_threads: int | None = Field(None, ge=1, description="Intra-op threads per replica (empty = torch's).")
    video_timeout_s: float = Field(3600.0, gt=0, description="A video (or benchmark sequence) taking longer "
                                                             "is recorded as failed and its replica replaced.")


def row_params(model: BaseModel) -> dict:
    """The fields of an options model (nested) that change its output: those not marked ``NOT_IN_PARAMS``."""
    out = {}
    for name, info in type(model).model_fields.items():
        if (info.json_schema_extra or {}).get("in_params", True) is False:
            continue
        value = getattr(model, name)
        out[name] = row_params(value) if isinstance(value, BaseModel) else value
    return out


def not_in_params(cls: type[BaseModel]) -> list[tuple[str, ...]]:
    """The field paths of ``cls`` (nested) marked ``NOT_IN_PARAMS``: ``[("decode", "max_side"), ...]``."""
    out = []
    for name, info in cls.model_fields.items():
        if (info.json_schema_extra or {}).get("in_params", True) is False:
            out.append((name,))
        elif isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out += [(name, *path) for path in not_in_params(info.annotation)]
    return out


# ------------------------------------------------------------------------------------------------------------------
# Building options from loose values (CLI flags, dicts), with one-line errors
# ------------------------------------------------------------------------------------------------------------------


def build(cls: type[_Options], values: dict[str, Any], names: dict[str, str] | None = None) -> Any:
    """``cls`` from a nested dict, or an :class:`OptionsError` naming each bad value in one line.

    names: field path ('decode.stride') -> how the user spelled it ('--stride'), for the message.
    """
    try:
        return cls.model_validate(values)
    except ValidationError as err:
        raise OptionsError(describe_validation_error(err, names)) from None


def describe_validation_error(err: ValidationError, names: dict[str, str] | None = None) -> str:
    """pydantic's errors as one line: ``--stride: must be >= 1 (got 0); ...``."""
    parts = []
    for e in err.errors(include_url=False):
        path = ".".join(str(p) for p in e.get("loc", ()))
        where = (names or {}).get(path, path)
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        msg = msg.replace("Input should be", "must be").replace("Extra inputs are not permitted", "unknown option")
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        parts.append(f"{where}: {msg}{got}" if where else f"{msg}{got}")
    return "; ".join(parts)


def _field(cls: type[BaseModel], path: str):
    *parents, name = path.split(".")
    for part in parents:
        cls = cls.model_fields[part].annotation
    return cls.model_fields[name]


def click_options(cls: type[_Options], flags: dict[str, str], dest: str) -> Callable:
    """A decorator adding one click option per entry of ``flags`` (flag -> field path of ``cls``).

    Help text and the shown default come from the field. Options the user does not give stay unset, so the
    model's own default applies; the command receives ``dest=cls(...)`` built and validated by :func:`build`
    (a bad value is one :class:`OptionsError` naming the flag).
    """
    import click

    def decorate(fn: Callable) -> Callable:
        params = []
        for flag, path in flags.items():
            info = _field(cls, path)
            var = f"{dest}__" + path.replace(".", "__")
            kind = next(t for t in (typing.get_args(info.annotation) or (info.annotation,)) if t is not type(None))
            help_text = (info.description or "") + ("" if info.default is None else f"  [default: {info.default}]")
            if kind is bool:
                params.append(click.Option([flag, var], default=None, help=help_text))
            else:
                params.append(click.Option([flag, var], type=kind, default=None, help=help_text))
        names = {path: flag.split("/")[0] for flag, path in flags.items()}

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            nested: dict[str, Any] = {}
            for key in [k for k in kwargs if k.startswith(f"{dest}__")]:
                value = kwargs.pop(key)
                if value is None:
                    continue
                *parents, name = key.removeprefix(f"{dest}__").split("__")
                node = nested
                for part in parents:
                    node = node.setdefault(part, {})
                node[name] = value
            kwargs[dest] = build(cls, nested, names)
            return fn(*args, **kwargs)

        wrapper.__click_params__ = [*getattr(fn, "__click_params__", []), *reversed(params)]
        return wrapper

    return decorate
