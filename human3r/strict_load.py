"""Building the network with its parameters on the meta device, and strictly loading a state dict into it.

* Matching is strict: every tensor the network reads must be present with its shape; keys the reference keeps
  but inference never reads (``Human3R.UNUSED_KEY_PREFIXES``) are accepted, listed in the :class:`LoadReport`
  and logged once; everything else is one :class:`CheckpointError` listing every key.
* The network is built with its parameters on the meta device and the checkpoint tensors (memory-mapped) are
  assigned in place, so weights are never allocated twice.

Used by :mod:`human3r.weights` for official and our own checkpoints alike.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from human3r.config import Human3RConfig
from human3r.errors import CheckpointError

__all__ = ["LoadReport", "check_state_dict"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------------------
# Building and strict loading
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadReport:
    """What a strict load accepted without using."""

    source: str  # file the tensors came from
    unused_present: tuple[str, ...] = ()  # keys in the file that inference never reads (loaded, or dropped)
    unused_missing: tuple[str, ...] = ()  # never-read keys absent from the file (zero-filled)
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, canonical) key pairs that are one tensor


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
