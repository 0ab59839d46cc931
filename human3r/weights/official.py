"""Reading official Human3R reference checkpoints safely: the pickle and its constructor string.

Official files (Hugging Face ``faneggg/human3r``) are training pickles ``{"model": state_dict, "args": ...,
"epoch": ...}`` where ``args`` is the Hydra config (an omegaconf ``DictConfig``; older tools save an
``argparse.Namespace`` or a dict) whose ``model`` field is the constructor string, e.g.
``ARCroco3DStereo(ARCroco3DStereoConfig(state_size=768, depth_mode=('exp', -inf, inf), ...))``.

Nothing is ever evaluated: the pickle is read with ``torch.load(weights_only=True)`` and an allow-list made for
exactly the globals the file names (omegaconf classes become inert stand-ins, no omegaconf import), and the
constructor string is parsed with ``ast`` (keyword arguments with literal values only). What the parsed arguments
mean for the network is :mod:`human3r.weights.reference_config`.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import pickle
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from human3r.errors import CheckpointError
from human3r.weights.spec import weights_hint

__all__ = ["OfficialCheckpoint", "parse_constructor", "read_official_checkpoint"]


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
            f"checkpoint; download it again. {weights_hint()}"
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
