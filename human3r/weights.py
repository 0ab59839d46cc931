"""Checkpoints: the official Human3R ``.pth`` files, our safetensors format, and the identity of loaded weights.

Official files (Hugging Face ``faneggg/human3r``) are training pickles ``{"model": state_dict, "args": ...,
"epoch": ...}`` where ``args`` is the Hydra config (an omegaconf ``DictConfig``; older tools save an
``argparse.Namespace`` or a dict) whose ``model`` field is the constructor string, e.g.
``ARCroco3DStereo(ARCroco3DStereoConfig(state_size=768, depth_mode=('exp', -inf, inf), ...))``.

* Nothing is ever evaluated: the pickle is read with ``torch.load(weights_only=True)`` and an allow-list made for
  exactly the globals the file names (omegaconf classes become inert stand-ins, no omegaconf import), and the
  constructor string is parsed with ``ast`` (keyword arguments with literal values only).
* Matching is strict: every tensor the network reads must be present with its shape; keys the reference keeps
  but inference never reads (``Human3R.UNUSED_KEY_PREFIXES``) are accepted, listed in the :class:`LoadReport`
  and logged once; everything else is one :class:`CheckpointError` listing every key.
* The network is built with its parameters on the meta device and the checkpoint tensors (memory-mapped) are
  assigned in place, so weights are never allocated twice.
* Our format is ``<name>.safetensors`` + ``<name>.json`` (config, aliases, model version). DPT alias keys
  (``scratch.layer_rn.{i}`` is ``scratch.layer{i+1}_rn``) are one tensor: stored once, restored on load.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from torch import nn

from human3r.config import Human3RConfig
from human3r.errors import CheckpointError, ConfigError

__all__ = [
    "CHECKPOINT_ENV",
    "DEFAULT_PRESET",
    "HF_REPO",
    "OFFICIAL_FILES",
    "LoadReport",
    "ModelIdentity",
    "OfficialCheckpoint",
    "check_state_dict",
    "download_official",
    "file_sha256",
    "inspect_weights",
    "load_checkpoint",
    "load_model",
    "parse_constructor",
    "preset_of",
    "read_official_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
]

logger = logging.getLogger(__name__)

HF_REPO = "faneggg/human3r"
CHECKPOINT_ENV = "HUMAN3R_CHECKPOINT"  # path or spec used by `auto`
CACHE_ENV = "HUMAN3R_CACHE_DIR"  # where the sha256 cache lives (default ~/.cache/human3r)
DEFAULT_PRESET = "896L"
OFFICIAL_FILES = {  # preset -> file in faneggg/human3r
    "896L": "human3r_896L.pth",
    "672L": "human3r_672L.pth",
    "672B": "human3r_672B.pth",
    "672S": "human3r_672S.pth",
}
README_FILE = "human3r.pth"  # the name the upstream README downloads (the 896L model)
FORMAT, FORMAT_VERSION = "human3r-safetensors", 1
_SAFETENSORS_PIP = "pip install safetensors==0.8.0"
_HF_PIP = "pip install 'huggingface_hub>=0.30,<3'"


def _get_weights_hint(preset: str | None = None) -> str:
    name = OFFICIAL_FILES.get(preset or DEFAULT_PRESET, OFFICIAL_FILES[DEFAULT_PRESET])
    return (
        f"Get the weights with `huggingface-cli download {HF_REPO} {name}` (or `human3r weights download {name}`), "
        f"or set {CHECKPOINT_ENV}=/path/to/{name}; for a smoke run without weights use `untrained:<preset>`."
    )


# ------------------------------------------------------------------------------------------------------------------
# Identity and load report
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    """What a strict load accepted without using."""

    source: str  # file the tensors came from
    unused_present: tuple[str, ...] = ()  # keys in the file that inference never reads (loaded, or dropped)
    unused_missing: tuple[str, ...] = ()  # never-read keys absent from the file (zero-filled)
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, canonical) key pairs that are one tensor


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights a model carries. ``model_version`` is the dataset key ([A-Za-z0-9._-] only)."""

    spec: str  # what was asked for: a path, `auto`, `hf:...`, `untrained:<preset>[:seed]`
    name: str  # file name, or `untrained:<preset>:<seed>`
    preset: str  # matching preset (`896L`, `tiny`, ...) or `custom`
    model_version: str  # `human3r-<preset>-<sha256[:16]>` or `untrained-<preset>-seed<seed>`
    sha256: str | None = None  # of the weights file; None for untrained weights
    path: str | None = None  # resolved weights file
    is_untrained: bool = False  # random weights on purpose (smoke runs)
    report: LoadReport | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("report")
        return d


def preset_of(config: Human3RConfig) -> str:
    """Name of the preset equal to ``config`` (ignoring its ``name``), else ``custom``."""
    for name in Human3RConfig.preset_names():
        if dataclasses.replace(Human3RConfig.preset(name), name=config.name) == config:
            return name
    return "custom"


def _model_version(preset: str, sha256: str) -> str:
    return f"human3r-{preset}-{sha256[:16]}"


# ------------------------------------------------------------------------------------------------------------------
# Hashing (streamed, cached by path/size/mtime)
# ------------------------------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "human3r")
    return Path(root).expanduser()


def file_sha256(path: str | os.PathLike, use_cache: bool = True) -> str:
    """sha256 of a file, streamed in 8 MiB blocks; cached in ~/.cache/human3r/sha256.json by (path, size, mtime)."""
    p = Path(path).resolve()
    st = p.stat()
    key, stamp = str(p), [st.st_size, st.st_mtime_ns]
    cache_file = _cache_dir() / "sha256.json"
    cache: dict[str, Any] = {}
    if use_cache:
        with contextlib.suppress(OSError, ValueError):
            cache = json.loads(cache_file.read_text())
        hit = cache.get(key)
        if isinstance(hit, dict) and hit.get("stamp") == stamp and isinstance(hit.get("sha256"), str):
            return hit["sha256"]
    digest = hashlib.sha256()
    with open(p, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    sha = digest.hexdigest()
    if use_cache:
        cache[key] = {"stamp": stamp, "sha256": sha}
        with contextlib.suppress(OSError):  # a read-only home only costs the cache
            _atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))
    return sha


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------------------------------------------------------
# Reading the official pickle safely
# ------------------------------------------------------------------------------------------------------------------


class _PickledConfigObject:
    """Inert stand-in for omegaconf containers, nodes and metadata: keeps the pickled state, runs no code."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)


class _PickledName:
    """A type or typing object that appears only as a value in the pickled config (e.g. `typing.Any`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<pickled {self.name}>"


def _plain_dict(*_args: Any) -> dict:
    """`collections.defaultdict(factory)` -> a plain dict (omegaconf's resolver cache)."""
    return {}


def _path_string(*parts: Any) -> str:
    """`pathlib.PosixPath(*parts)` -> its string."""
    return str(PurePosixPath(*[str(p) for p in parts]))


_VALUE_NAMES = {f"builtins.{t}" for t in ("dict", "list", "tuple", "set", "int", "float", "str", "bool", "bytes",
                                          "object", "type", "NoneType")} | {"typing.Any", "typing.Optional",
                                                                            "typing.Union", "typing.Dict",
                                                                            "typing.List", "typing.Tuple"}
_OMEGACONF_NAMES = (  # used when the file cannot be pre-scanned (legacy, non-zip torch format)
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.Metadata",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.BytesNode",
    "omegaconf.nodes.PathNode",
    "omegaconf.nodes.EnumNode",
)


def _substitute(name: str) -> Any | None:
    """The object the unpickler may use for global `name`, or None when the file must be refused."""
    if name == "argparse.Namespace":
        return argparse.Namespace
    if name.startswith("omegaconf."):
        return _PickledConfigObject
    if name in _VALUE_NAMES:
        return _PickledName(name)
    if name == "collections.defaultdict":
        return _plain_dict
    if name in ("pathlib.PosixPath", "pathlib.PurePosixPath", "pathlib.Path"):
        return _path_string
    return None


def _safe_torch_load(path: Path, mmap: bool = True) -> Any:
    """torch.load(weights_only=True) with an allow-list for exactly the non-tensor globals the file names."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        is_zip = True
    except Exception:  # the legacy (non-zip) format cannot be pre-scanned and cannot be memory-mapped
        names = sorted(_VALUE_NAMES) + list(_OMEGACONF_NAMES) + ["argparse.Namespace", "collections.defaultdict"]
        is_zip = False
    refused = sorted({n for n in names if _substitute(n) is None})
    if refused:
        raise CheckpointError(
            f"{path} contains pickled objects of types {refused}; loading them could run arbitrary code, so it is "
            "refused (only tensors, dicts, argparse/omegaconf configs are accepted). If the file is from a source "
            "you trust, re-save it once in that environment as {'model': state_dict, 'args': {'model': "
            "constructor_string}} and load that."
        )
    allow = []
    for n in names:
        sub = _substitute(n)
        if sub is not None:
            allow.append((sub, n))
    try:
        with torch.serialization.safe_globals(allow):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and is_zip)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError, AttributeError) as err:
        if "Unsupported global" in str(err):  # a global the static pre-scan could not see
            raise CheckpointError(
                f"{path} contains a pickled object that is not allowed ({_torch_load_reason(err)}); it is refused "
                "because loading it could run arbitrary code."
            ) from err
        raise CheckpointError(
            f"cannot read checkpoint {path}: {_torch_load_reason(err)}. It is truncated, corrupt or not a torch "
            f"checkpoint; download it again. {_get_weights_hint()}"
        ) from err


def _torch_load_reason(err: Exception) -> str:
    """The cause from torch.load's message, without its advice to retry with weights_only=False."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    text = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return text[:300]


def _plain(obj: Any) -> Any:
    """Turn the unpickled config (omegaconf stand-ins, Namespace) into plain dicts/lists/values."""
    if isinstance(obj, _PickledConfigObject):
        d = obj.__dict__
        if "_content" in d:
            return _plain(d["_content"])
        return _plain(d.get("_val"))
    if isinstance(obj, argparse.Namespace):
        return {k: _plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


# ------------------------------------------------------------------------------------------------------------------
# The constructor string, parsed (never evaluated)
# ------------------------------------------------------------------------------------------------------------------

_CONSTRUCTORS = ("ARCroco3DStereo", "ARCroco3DStereoConfig")
_SPECIAL_FLOATS = {"inf": float("inf"), "nan": float("nan")}


class _SpecialFloats(ast.NodeTransformer):
    """`inf`, `nan` (numpy names the reference's eval sees) and `float('inf')` become constants."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _SPECIAL_FLOATS:
            return ast.copy_location(ast.Constant(_SPECIAL_FLOATS[node.id]), node)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id == "float"
            and len(node.args) == 1
            and not node.keywords
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.strip().lstrip("+-").lower() in _SPECIAL_FLOATS
        ):
            return ast.copy_location(ast.Constant(float(node.args[0].value)), node)
        return node  # any other call stays a call, and literal_eval refuses it


def _literal(node: ast.AST) -> Any:
    return ast.literal_eval(_SpecialFloats().visit(copy.deepcopy(node)))


def parse_constructor(text: str) -> dict[str, Any]:
    """Keyword arguments of a reference constructor string such as ``ARCroco3DStereo(ARCroco3DStereoConfig(...))``.

    Only calls of ``ARCroco3DStereo`` / ``ARCroco3DStereoConfig`` are accepted; positional arguments must be
    such calls, keyword values must be literals (numbers, strings, tuples, ..., plus ``inf`` / ``nan``).
    Anything else -- another name, an attribute, a function call, ``**kw`` -- raises one CheckpointError
    listing every offending piece.
    """
    if not isinstance(text, str):
        raise CheckpointError(f"the checkpoint's model constructor must be a string, got {type(text).__name__}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise CheckpointError(f"the checkpoint's model constructor is not valid Python syntax: {err}") from err
    kwargs: dict[str, Any] = {}
    problems: list[str] = []

    def visit(node: ast.AST) -> None:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CONSTRUCTORS):
            problems.append(f"`{ast.unparse(node)}` is not a call of {' or '.join(_CONSTRUCTORS)}")
            return
        for arg in node.args:
            visit(arg)
        for kw in node.keywords:
            if kw.arg is None:
                problems.append(f"`**{ast.unparse(kw.value)}` is not allowed")
                continue
            try:
                value = _literal(kw.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                problems.append(f"`{kw.arg}={ast.unparse(kw.value)}` is not a literal value")
                continue
            if kw.arg in kwargs:
                problems.append(f"`{kw.arg}` is given twice")
            kwargs[kw.arg] = value

    visit(tree.body)
    if problems:
        raise CheckpointError(
            "refusing the checkpoint's model constructor string (it is parsed, never evaluated): "
            + "; ".join(problems)
            + ". Only keyword arguments with literal values are accepted; pass preset=... to build a known "
            "configuration instead."
        )
    return kwargs


# ------------------------------------------------------------------------------------------------------------------
# Official checkpoint
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficialCheckpoint:
    state_dict: dict[str, torch.Tensor]  # reference key -> tensor (memory-mapped when possible)
    constructor: str | None  # args.model, when the file has it
    extras: tuple[str, ...]  # other top-level entries (epoch, optimizer, ...), ignored


def read_official_checkpoint(path: str | os.PathLike) -> OfficialCheckpoint:
    """Read a reference training checkpoint safely (see module docstring). Tensors are memory-mapped."""
    p = Path(path)
    obj = _safe_torch_load(p)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        sd, args = obj["model"], _plain(obj.get("args"))
        extras = tuple(sorted(str(k) for k in obj if k not in ("model", "args")))
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd, args, extras = obj, None, ()  # a bare state dict
    else:
        raise CheckpointError(
            f"{p} is not a Human3R checkpoint: expected {{'model': state_dict, 'args': ...}} or a state dict, got "
            f"{type(obj).__name__} with keys {sorted(map(str, obj))[:10] if isinstance(obj, dict) else '-'}"
        )
    bad = sorted(str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{p}: state-dict entries {bad[:20]} are not tensors")
    if sd and all(k.startswith("module.") for k in sd):  # saved from a DataParallel wrapper
        sd = {k[len("module."):]: v for k, v in sd.items()}
    constructor = None
    if isinstance(args, dict):
        constructor = args.get("model")
    elif args is not None:
        constructor = getattr(args, "model", None)
    if constructor is not None and not isinstance(constructor, str):
        raise CheckpointError(f"{p}: args.model should be the constructor string, got {type(constructor).__name__}")
    return OfficialCheckpoint(dict(sd), constructor, extras)


def _config_from_constructor(constructor: str | None, preset: str | None, source: Path) -> Human3RConfig:
    if constructor is None:
        if preset is None:
            raise CheckpointError(
                f"{source} has no args.model constructor string, so its configuration is unknown; pass the preset "
                f"(preset=... / --preset, one of {list(Human3RConfig.preset_names())})."
            )
        return Human3RConfig.preset(preset)
    kwargs = parse_constructor(constructor)
    kwargs["landscape_only"] = False  # the reference forces this too: portrait frames are processed as they are
    # A released variant is fully described by its string (backbone, mhmr_img_res); only other presets (tiny)
    # supply internals the reference hard-codes, so only they are passed on as a hint.
    hint = None if preset in OFFICIAL_FILES else preset
    try:
        with warnings.catch_warnings(record=True) as caught:  # training-only arguments are expected
            warnings.simplefilter("always")
            config = Human3RConfig.from_reference_kwargs(kwargs, preset_hint=hint)
        for w in caught:
            logger.debug("%s: %s", source, w.message)
    except ConfigError as err:
        raise CheckpointError(f"{source}: its model configuration is not supported: {err}") from err
    if preset in OFFICIAL_FILES and preset_of(config) != preset:
        logger.warning("%s holds the %s variant, not the requested %s; using the file's", source,
                       preset_of(config), preset)
    return config


# ------------------------------------------------------------------------------------------------------------------
# Building and strict loading
# ------------------------------------------------------------------------------------------------------------------


def _model_class() -> type[nn.Module]:
    from human3r.model import Human3R

    return Human3R


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Register every new nn.Parameter on the meta device; buffers stay real (they may not be in the checkpoint).

    Construction-time initialisation then touches no memory. Not thread-safe (patches nn.Module for the block).
    """
    original = nn.Module.register_parameter
    seen: dict[int, tuple[nn.Parameter, nn.Parameter]] = {}

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            if id(param) not in seen:  # keep tied parameters tied
                seen[id(param)] = (param, nn.Parameter(param.to("meta"), requires_grad=param.requires_grad))
            module._parameters[name] = seen[id(param)][1]

    nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def _build_empty(config: Human3RConfig) -> nn.Module:
    with _parameters_on_meta():
        return _model_class()(config)


def _is_unused(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p) for p in prefixes)


def _alias_groups(model: nn.Module) -> list[list[str]]:
    """State-dict keys that name one tensor, grouped (first key = canonical)."""
    groups: dict[int, list[str]] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(value), []).append(key)
    return [g for g in groups.values() if len(g) > 1]


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal tensors; views of the same memory (how torch.save keeps aliases) are equal without reading them."""
    if a is b:
        return True
    if a.device.type == "meta" or b.device.type == "meta":
        return False
    same_view = (
        a.device == b.device and a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        and a.storage_offset() == b.storage_offset()
        and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    )
    return same_view or torch.equal(a, b)


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> LoadReport:
    """Strictly compare a state dict with the network; one CheckpointError lists every problem.

    Missing / unexpected / wrong-shape keys are errors unless inference never reads them
    (``UNUSED_KEY_PREFIXES`` of the model class). Alias keys present in the file must hold equal tensors.
    """
    prefixes = tuple(getattr(type(model), "UNUSED_KEY_PREFIXES", ()))
    expected = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    missing = sorted(k for k in expected if k not in state_dict and not _is_unused(k, prefixes))
    unexpected = sorted(k for k in state_dict if k not in expected and not _is_unused(k, prefixes))
    wrong = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs network {expected[k]}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != expected[k] and not _is_unused(k, prefixes)
    )
    groups = _alias_groups(model)
    differing = []
    for group in groups:
        present = [k for k in group if k in state_dict and tuple(state_dict[k].shape) == expected[k]]
        if len(present) > 1 and not all(_same_values(state_dict[present[0]], state_dict[k]) for k in present[1:]):
            differing.append(" / ".join(present))
    problems = []
    for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong),
                        ("aliases that should be one tensor but differ", differing)):
        if keys:
            problems.append(f"{len(keys)} {title}:\n  " + "\n  ".join(keys))
    if problems:
        raise CheckpointError(
            f"{source} does not match the network ({getattr(getattr(model, 'cfg', None), 'name', '?')} "
            "configuration):\n" + "\n".join(problems) + "\nNext step: check that the file is a Human3R checkpoint "
            "of this variant (pass the right preset=... / --preset; `human3r weights verify FILE` lists the "
            "mismatches), or re-download it if it is truncated."
        )
    unused_present = tuple(sorted(k for k in state_dict if _is_unused(k, prefixes)))
    unused_missing = tuple(sorted(k for k in expected if k not in state_dict and _is_unused(k, prefixes)))
    aliases = tuple((alias, group[0]) for group in groups for alias in group[1:])
    return LoadReport(str(source), unused_present, unused_missing, aliases)


_logged_reports: set[str] = set()


def _log_report_once(report: LoadReport) -> None:
    if report.source in _logged_reports:
        return
    _logged_reports.add(report.source)
    if report.unused_present or report.unused_missing:
        logger.info(
            "%s: %d keys inference never reads were accepted (%s); %d such keys were absent and zero-filled (%s)",
            report.source, len(report.unused_present), ", ".join(report.unused_present[:8]),
            len(report.unused_missing), ", ".join(report.unused_missing[:8]),
        )


def _assign(model: nn.Module, state_dict: dict[str, torch.Tensor], report: LoadReport) -> None:
    """Load a checked state dict into a meta-parameter model by assignment (no copy)."""
    prefixes = tuple(getattr(type(model), "UNUSED_KEY_PREFIXES", ()))
    full: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict(keep_vars=True).items():
        given = state_dict.get(key)
        if given is not None and tuple(given.shape) == tuple(value.shape):
            full[key] = given
        elif _is_unused(key, prefixes):  # absent or mis-shaped but never read
            full[key] = torch.zeros(value.shape, dtype=value.dtype)
        else:  # pragma: no cover - check_state_dict ran first
            raise CheckpointError(f"internal: {key} passed the check but is not loadable")
    model.load_state_dict(full, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if left:
        raise CheckpointError(f"internal: tensors {left[:10]} were not loaded; the state dict lacks them")
    _log_report_once(report)


def _finish(model: nn.Module, device: str | torch.device, dtype: torch.dtype) -> nn.Module:
    model.to(device=device, dtype=dtype)
    model.eval()
    model.requires_grad_(False)
    return model


# ------------------------------------------------------------------------------------------------------------------
# Our format: safetensors + JSON side by side
# ------------------------------------------------------------------------------------------------------------------


def _sidecar(path: Path) -> tuple[Path, Path]:
    """(weights.safetensors, weights.json) for either file name."""
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike, *, model_version: str | None = None, source: dict | None = None
) -> Path:
    """Write ``<path>.safetensors`` + ``<path>.json``; returns the .safetensors path.

    Alias keys are stored once and listed in the JSON. ``model_version`` (default: derived from the file's
    sha256) and ``source`` (e.g. the official file and its sha256) are recorded, so a converted checkpoint keeps
    the dataset key of the file it came from.
    """
    try:
        from safetensors.torch import save_file
    except ImportError as err:
        raise ImportError(f"saving checkpoints needs safetensors: {_SAFETENSORS_PIP}") from err
    weights_path, json_path = _sidecar(Path(path))
    config: Human3RConfig = model.cfg
    aliases = {alias: group[0] for group in _alias_groups(model) for alias in group[1:]}
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if k not in aliases}
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(f".{weights_path.name}.tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    os.replace(tmp, weights_path)
    sha = file_sha256(weights_path)
    preset = preset_of(config)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "model_version": model_version or _model_version(preset, sha),
        "weights_file": weights_path.name,
        "weights_sha256": sha,
        "aliases": aliases,
        "source": source or {},
        "config": config.to_dict(),
    }
    _atomic_write_text(json_path, json.dumps(meta, indent=1) + "\n")
    return weights_path


def _read_sidecar(path: Path) -> tuple[Path, dict[str, Any]]:
    weights_path, json_path = _sidecar(path)
    if not json_path.is_file():
        raise CheckpointError(
            f"{weights_path} has no {json_path.name} next to it; our safetensors checkpoints are written with their "
            "JSON config by `human3r weights convert` / save_checkpoint. Re-run the conversion."
        )
    try:
        meta = json.loads(json_path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{json_path} is not valid JSON: {err}. Re-run the conversion.") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{json_path} is not a {FORMAT} v{FORMAT_VERSION} description (format={meta.get('format')!r}, "
            f"version={meta.get('format_version')!r}). Re-run `human3r weights convert`."
        )
    if not weights_path.is_file():
        raise CheckpointError(f"{json_path} describes {weights_path}, which does not exist. Re-run the conversion.")
    return weights_path, meta


# ------------------------------------------------------------------------------------------------------------------
# Resolving a spec, identity without building, and loading
# ------------------------------------------------------------------------------------------------------------------


def _hf_cache_dir() -> str:
    """The Hugging Face hub cache, from the environment at call time (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME)."""
    home = os.getenv("HF_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    cache = os.getenv("HF_HUB_CACHE") or os.getenv("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return os.path.expandvars(os.path.expanduser(cache))


def _import_hf():
    try:
        import huggingface_hub
    except ImportError as err:
        raise ImportError(f"Hugging Face downloads need huggingface_hub: {_HF_PIP}") from err
    return huggingface_hub


def _candidate_files(preset: str | None) -> list[str]:
    names = [OFFICIAL_FILES[preset]] if preset in OFFICIAL_FILES else []
    names += [n for n in OFFICIAL_FILES.values() if n not in names] + [README_FILE]
    return names


def _expand_auto(spec: str) -> tuple[str, str]:
    """`auto` -> $HUMAN3R_CHECKPOINT when set (any spec but `auto`); other specs unchanged. Returns (spec, origin)."""
    if spec != "auto":
        return spec, "argument"
    env = os.environ.get(CHECKPOINT_ENV, "").strip()
    if env == "auto":
        raise CheckpointError(f"{CHECKPOINT_ENV}=auto would resolve to itself; set it to a path or an hf:... spec")
    return (env, f"${CHECKPOINT_ENV}") if env else ("auto", "auto")


def _auto_path(preset: str | None) -> Path:
    """`auto` without $HUMAN3R_CHECKPOINT: the first official file in the Hugging Face cache (preset's first)."""
    hub = _import_hf()
    cache = _hf_cache_dir()
    names = _candidate_files(preset)
    for name in names:
        found = hub.try_to_load_from_cache(HF_REPO, name, cache_dir=cache)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    raise CheckpointError(
        f"no Human3R weights found for `auto`: ${CHECKPOINT_ENV} is not set and the Hugging Face cache {cache} "
        f"holds none of {names} from {HF_REPO}. {_get_weights_hint(preset)}"
    )


def download_official(filename: str | None = None, *, preset: str | None = None, repo: str = HF_REPO) -> Path:
    """Fetch an official file with huggingface_hub (cached); offline or missing -> CheckpointError with next steps."""
    hub = _import_hf()
    name = filename or OFFICIAL_FILES.get(preset or DEFAULT_PRESET, OFFICIAL_FILES[DEFAULT_PRESET])
    try:
        return Path(hub.hf_hub_download(repo_id=repo, filename=name, cache_dir=_hf_cache_dir()))
    except Exception as err:  # offline, no such file, gated repo, HTTP errors: all need the same advice
        raise CheckpointError(
            f"could not download {name} from Hugging Face repo {repo}: {type(err).__name__}: {err}. "
            f"If this machine is offline, download it elsewhere with `huggingface-cli download {repo} {name}` and "
            f"copy the file here, then set {CHECKPOINT_ENV}=/path/to/{name} (or pass the path)."
        ) from err


def _parse_untrained(spec: str, preset: str | None) -> tuple[str, int]:
    parts = spec.split(":")
    name = parts[1] if len(parts) > 1 and parts[1] else (preset or DEFAULT_PRESET)
    try:
        seed = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise CheckpointError(f"bad spec {spec!r}: the seed must be an integer (untrained:<preset>[:seed])") from None
    if len(parts) > 3 or name not in Human3RConfig.preset_names():
        raise CheckpointError(
            f"bad spec {spec!r}: expected untrained:<preset>[:seed], preset in {list(Human3RConfig.preset_names())}"
        )
    return name, seed


def _resolve_path(spec: str, origin: str, preset: str | None, download: bool) -> Path:
    """The weights file a (non-untrained, auto-expanded) spec names."""
    if spec == "auto":
        return _auto_path(preset)
    if spec.startswith("hf:"):
        rest = spec[3:].strip("/")
        parts = rest.split("/")
        repo, name = ("/".join(parts[:2]), "/".join(parts[2:])) if len(parts) > 2 else (HF_REPO, rest)
        if not name:
            raise CheckpointError(
                f"bad spec {spec!r}: expected hf:<owner>/<repo>/<file>, "
                f"e.g. hf:{HF_REPO}/{OFFICIAL_FILES[DEFAULT_PRESET]}"
            )
        if download:
            return download_official(name, repo=repo)
        found = _import_hf().try_to_load_from_cache(repo, name, cache_dir=_hf_cache_dir())
        if not (isinstance(found, str) and os.path.isfile(found)):
            raise CheckpointError(
                f"{spec} is not in the Hugging Face cache {_hf_cache_dir()}. {_get_weights_hint(preset)}"
            )
        return Path(found)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise CheckpointError(f"weights file {path} (from {origin}) does not exist. {_get_weights_hint(preset)}")
    return path


def _is_ours(path: Path) -> bool:
    return path.suffix in (".safetensors", ".json")


def inspect_weights(spec: str, *, preset: str | None = None, download: bool = False) -> ModelIdentity:
    """Identity of the weights ``spec`` names, without building the network (reads only the config)."""
    asked = spec
    spec, origin = _expand_auto(spec)
    if spec.startswith("untrained"):
        return _untrained_identity(asked, *_parse_untrained(spec, preset))
    path = _resolve_path(spec, origin, preset, download)
    if _is_ours(path):
        weights_path, meta = _read_sidecar(path)
        config = Human3RConfig.from_dict(meta["config"])
        sha = file_sha256(weights_path)
        _check_recorded_sha(weights_path, meta, sha)
        version = meta.get("model_version") or _model_version(preset_of(config), sha)
        return ModelIdentity(asked, weights_path.name, preset_of(config), version, sha, str(weights_path))
    ck = read_official_checkpoint(path)
    config = _config_from_constructor(ck.constructor, preset, path)
    sha = file_sha256(path)
    name = preset_of(config)
    return ModelIdentity(asked, path.name, name, _model_version(name, sha), sha, str(path))


def _check_recorded_sha(weights_path: Path, meta: dict[str, Any], sha: str) -> None:
    recorded = meta.get("weights_sha256")
    if recorded and recorded != sha:
        raise CheckpointError(
            f"{weights_path} changed after it was written (sha256 {sha[:16]}..., its JSON records {recorded[:16]}...)"
            "; its recorded model version would be wrong. Re-run `human3r weights convert`."
        )


def verify_checkpoint(path: str | os.PathLike, *, preset: str | None = None) -> ModelIdentity:
    """Strictly check a weights file against the network it describes, without loading it into memory.

    Raises CheckpointError listing every mismatch; returns the identity (sha256 freshly computed) with its report.
    """
    p = Path(path)
    if _is_ours(p):
        weights_path, _ = _read_sidecar(p)
        with contextlib.suppress(OSError, ValueError):  # no cache yet, or an unreadable one
            _forget_sha(weights_path)
        _, identity = load_checkpoint(p)
        return identity
    ck = read_official_checkpoint(p)
    config = _config_from_constructor(ck.constructor, preset, p)
    report = check_state_dict(_build_empty(config), ck.state_dict, str(p))
    sha = file_sha256(p, use_cache=False)
    name = preset_of(config)
    return ModelIdentity(str(path), p.name, name, _model_version(name, sha), sha, str(p), report=report)


def _forget_sha(path: Path) -> None:
    """Drop a file's cached hash so the next file_sha256 reads it again."""
    cache_file = _cache_dir() / "sha256.json"
    cache = json.loads(cache_file.read_text())
    if cache.pop(str(path.resolve()), None) is not None:
        _atomic_write_text(cache_file, json.dumps(cache, indent=1, sort_keys=True))


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, ModelIdentity]:
    """Load our format (``.safetensors`` + ``.json``), strictly."""
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise ImportError(f"loading .safetensors checkpoints needs safetensors: {_SAFETENSORS_PIP}") from err
    weights_path, meta = _read_sidecar(Path(path))
    try:
        config = Human3RConfig.from_dict(meta["config"])
    except (ConfigError, KeyError) as err:
        raise CheckpointError(f"{weights_path}: its JSON config is invalid: {err}. Re-run the conversion.") from err
    sha = file_sha256(weights_path)
    _check_recorded_sha(weights_path, meta, sha)
    try:
        sd = load_file(str(weights_path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for truncated / foreign files
        raise CheckpointError(f"cannot read {weights_path}: {err}. Re-run the conversion.") from err
    for alias, canonical in (meta.get("aliases") or {}).items():
        if canonical in sd and alias not in sd:
            sd[alias] = sd[canonical]
    model = _build_empty(config)
    report = check_state_dict(model, sd, str(weights_path))
    _assign(model, sd, report)
    preset = preset_of(config)
    identity = ModelIdentity(
        str(path), weights_path.name, preset, meta.get("model_version") or _model_version(preset, sha), sha,
        str(weights_path), report=report,
    )
    return _finish(model, device, dtype), identity


def _load_official(
    path: Path, spec: str, preset: str | None, device: str | torch.device, dtype: torch.dtype
) -> tuple[nn.Module, ModelIdentity]:
    ck = read_official_checkpoint(path)
    config = _config_from_constructor(ck.constructor, preset, path)
    model = _build_empty(config)
    report = check_state_dict(model, ck.state_dict, str(path))
    _assign(model, ck.state_dict, report)
    sha = file_sha256(path)
    name = preset_of(config)
    identity = ModelIdentity(spec, path.name, name, _model_version(name, sha), sha, str(path), report=report)
    return _finish(model, device, dtype), identity


def _load_untrained(
    spec: str, preset: str | None, device: str | torch.device, dtype: torch.dtype
) -> tuple[nn.Module, ModelIdentity]:
    name, seed = _parse_untrained(spec, preset)
    from human3r.init import synthetic_init_

    model = synthetic_init_(_model_class()(Human3RConfig.preset(name)), seed)
    logger.warning("using UNTRAINED random weights (%s, seed %d): outputs are meaningless", name, seed)
    return _finish(model, device, dtype), _untrained_identity(spec, name, seed)


def _untrained_identity(spec: str, name: str, seed: int) -> ModelIdentity:
    return ModelIdentity(spec, f"untrained:{name}:{seed}", name, f"untrained-{name}-seed{seed}", is_untrained=True)


def load_model(
    spec: str, *, preset: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, ModelIdentity]:
    """Build Human3R and load weights named by ``spec``. Returns ``(model in eval mode, identity)``.

    spec:
      * a path: official ``.pth`` (reference training checkpoint) or our ``.safetensors`` (+ ``.json``);
      * ``auto``: ``$HUMAN3R_CHECKPOINT``, else the Hugging Face cache (``preset``'s file first);
      * ``hf:faneggg/human3r/<file>``: download (cached) with huggingface_hub;
      * ``untrained:<preset>[:seed]``: deterministic random weights, for smoke runs only.

    preset: for official files, the variant whose internals the constructor string does not spell out (needed
    for ``tiny``; the released variants follow from the string); for ``auto``, which file to prefer.
    """
    if not isinstance(spec, str) or not spec:
        raise CheckpointError(f"weights spec must be a non-empty string, got {spec!r}")
    asked = spec
    spec, origin = _expand_auto(spec)
    if spec.startswith("untrained"):
        model, identity = _load_untrained(spec, preset, device, dtype)
        return model, dataclasses.replace(identity, spec=asked)
    path = _resolve_path(spec, origin, preset, download=True)
    logger.info("loading Human3R weights %s (spec %r from %s)", path, spec, origin)
    if _is_ours(path):
        model, identity = load_checkpoint(path, device=device, dtype=dtype)
    else:
        model, identity = _load_official(path, spec, preset, device, dtype)
    return model, dataclasses.replace(identity, spec=asked)
