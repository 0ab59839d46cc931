"""Strict loading: build the network on the meta device, check a reference-named state dict, assign it.

* :func:`build_on_meta` constructs Human3R with every parameter on the meta device (buffers stay real), so
  construction-time initialisation touches no memory.
* :func:`check_state_dict` compares a state dict in reference names (as files hold them, see
  :mod:`human3r.weights.keys`) with the network: every tensor the network reads must be there with its shape; keys
  inference never reads are accepted and listed in the :class:`LoadReport`; anything else is one
  :class:`~human3r.errors.CheckpointError` listing every problem.
* :func:`load_state_dict` checks, then assigns the tensors in place (memory-mapped ones stay mapped): weights are
  never allocated twice.
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
from human3r.model import Human3R
from human3r.weights.keys import alias_groups, is_unused, module_keys

__all__ = ["LoadReport", "build_on_meta", "check_state_dict", "load_state_dict", "prepare_for_inference"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadReport:
    """What a strict load accepted without using (all keys in reference names)."""

    source: str  # file the tensors came from
    unused_present: tuple[str, ...] = ()  # keys in the file that inference never reads (loaded, or dropped)
    unused_missing: tuple[str, ...] = ()  # never-read keys absent from the file (zero-filled)
    aliases: tuple[tuple[str, str], ...] = ()  # (alias, canonical) key pairs that are one tensor


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Register every new nn.Parameter on the meta device; buffers stay real (they may not be in the checkpoint).

    Not thread-safe (patches nn.Module for the block).
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


def build_on_meta(config: Human3RConfig) -> Human3R:
    """Human3R with its parameters on the meta device, ready for :func:`load_state_dict`."""
    with _parameters_on_meta():
        return Human3R(config)


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
    """Strictly compare a reference-named state dict with the network; one CheckpointError lists every problem.

    Missing / unexpected / wrong-shape keys are errors unless inference never reads them
    (:data:`~human3r.weights.keys.UNUSED_KEY_PREFIXES`). Alias keys present in the file must hold equal tensors.
    """
    expected = {k: tuple(v.shape) for k, v in _reference_entries(model).items()}
    missing = sorted(k for k in expected if k not in state_dict and not is_unused(k))
    unexpected = sorted(k for k in state_dict if k not in expected and not is_unused(k))
    wrong = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs network {expected[k]}"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != expected[k] and not is_unused(k)
    )
    groups = alias_groups(model)
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
    unused_present = tuple(sorted(k for k in state_dict if is_unused(k)))
    unused_missing = tuple(sorted(k for k in expected if k not in state_dict and is_unused(k)))
    aliases = tuple((alias, group[0]) for group in groups for alias in group[1:])
    return LoadReport(str(source), unused_present, unused_missing, aliases)


def _reference_entries(model: nn.Module) -> dict[str, torch.Tensor]:
    entries = model.state_dict(keep_vars=True)
    return {ref: entries[key] for ref, key in module_keys(model).items()}


def load_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> LoadReport:
    """Check a reference-named state dict (:func:`check_state_dict`), then assign it to a meta-built ``model``.

    Tensors are assigned, not copied. Never-read keys that are absent (or mis-shaped) are zero-filled.
    """
    report = check_state_dict(model, state_dict, source)
    entries = model.state_dict(keep_vars=True)
    full: dict[str, torch.Tensor] = {}  # module key -> tensor
    for ref, key in module_keys(model).items():
        given, value = state_dict.get(ref), entries[key]
        if given is not None and tuple(given.shape) == tuple(value.shape):
            full[key] = given
        elif is_unused(ref):  # absent or mis-shaped but never read
            full[key] = torch.zeros(value.shape, dtype=value.dtype)
        else:  # pragma: no cover - check_state_dict ran first
            raise CheckpointError(f"internal: {ref} passed the check but is not loadable")
    model.load_state_dict(full, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if left:
        raise CheckpointError(f"internal: tensors {left[:10]} were not loaded; the state dict lacks them")
    _log_report_once(report)
    return report


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


def prepare_for_inference(model: nn.Module, device: str | torch.device, dtype: torch.dtype) -> nn.Module:
    """Move to ``device`` / ``dtype``, eval mode, no gradients. Returns ``model``."""
    model.to(device=device, dtype=dtype)
    model.eval()
    model.requires_grad_(False)
    return model
