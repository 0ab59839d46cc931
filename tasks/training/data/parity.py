"""The loader against the training parity pack: rebuild a case's collated views and compare them with ``batch.*``.

`pack_batch(pack_dir, case)` reads the case's ``dataset`` section (class, split, resolution, views, seed, crop
augmentation, transform, sample indices), builds the BEDLAM loader over ``pack_dir/bedlam`` and collates the
recorded samples with `torch.utils.data.default_collate`. `check_batch(views, pack_dir, case)` compares them with
the fixture under the pack's rules (§5: integer and bool arrays exact; ``img``, ``msk``, ``depthmap`` atol 1e-6;
other floats atol 1e-5 + rtol 1e-5) and the json's strings, and returns one :class:`KeyCheck` per key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from tasks.training.data.errors import DataLayoutError

TIGHT_KEYS = ("img", "msk", "depthmap")  # atol 1e-6
STRING_KEYS = ("label", "instance", "dataset")


@dataclasses.dataclass(frozen=True)
class KeyCheck:
    """One key's comparison: the worst |mine - fixture| and whether every element is within the rule."""

    key: str
    rule: str  # 'exact', 'atol=1e-06' or 'atol=1e-05,rtol=1e-05'
    worst: float  # max abs difference (mismatched elements for exact keys; 0/1 for strings)
    ok: bool
    note: str = ""


def pack_dataset(pack_dir: str | os.PathLike, case: str = "case_basic"):
    """(the BEDLAM loader set up as the case's ``dataset`` section says, over ``pack_dir/bedlam``; the section)."""
    from tasks.training.data.bedlam import BedlamDataset

    spec = json.loads((Path(pack_dir) / f"{case}.json").read_text())["dataset"]
    if spec["class"] != "BEDLAM_Multi" or spec.get("n_corres", 0):
        raise DataLayoutError(f"{case}: dataset {spec['class']} with n_corres={spec.get('n_corres')} is not supported")
    return BedlamDataset(Path(pack_dir) / "bedlam", split=spec["split"], resolution=[tuple(spec["resolution_WxH"])],
                         num_views=spec["num_views"], seed=spec["seed"], aug_crop=spec.get("aug_crop", 0),
                         color_jitter=spec.get("transform", "ImgNorm").startswith("SeqColorJitter"),
                         allow_repeat=spec.get("allow_repeat", False)), spec


def pack_batch(pack_dir: str | os.PathLike, case: str = "case_basic") -> list[dict]:
    """The case's batch as our loader makes it: ``default_collate([ds[(i, 0, V)] for i in sample_indices])``, one
    collated dict per view."""
    from torch.utils.data import default_collate

    dataset, spec = pack_dataset(pack_dir, case)
    return default_collate([dataset[(i, 0, spec["num_views"])] for i in spec["sample_indices"]])


def _as_array(value) -> np.ndarray | None:
    import torch

    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, list | tuple) and value and isinstance(value[0], torch.Tensor):
        return torch.stack(list(value), dim=1).numpy()  # idx: a list of 3 (B,) tensors -> (B, 3)
    return None


def check_batch(views: list[dict], pack_dir: str | os.PathLike, case: str = "case_basic") -> dict[str, KeyCheck]:
    """Every ``batch.v{i}.*`` key of the fixture (and the json's strings) against `views`, by the pack's rules."""
    fixture = np.load(Path(pack_dir) / f"{case}.npz")
    info = json.loads((Path(pack_dir) / f"{case}.json").read_text())
    root = str(Path(pack_dir) / "bedlam")
    out: dict[str, KeyCheck] = {}
    for key in fixture.files:
        if not key.startswith("batch.v"):
            continue
        view, name = int(key.split(".")[1][1:]), key.split(".", 2)[2]
        expected = fixture[key]
        mine = _as_array(views[view].get(name)) if view < len(views) else None
        if mine is None:
            out[key] = KeyCheck(key, "-", float("inf"), False, "missing")
            continue
        if mine.shape != expected.shape or (expected.dtype.kind in "biu" and mine.dtype != expected.dtype):
            out[key] = KeyCheck(key, "-", float("inf"), False, f"{mine.dtype}{mine.shape} vs "
                                                               f"{expected.dtype}{expected.shape}")
            continue
        if expected.dtype.kind in "biu":
            bad = int((mine != expected).sum())
            out[key] = KeyCheck(key, "exact", float(bad), bad == 0)
            continue
        atol, rtol = (1e-6, 0.0) if name in TIGHT_KEYS else (1e-5, 1e-5)
        diff = np.abs(mine.astype(np.float64) - expected.astype(np.float64))
        ok = bool(np.all(diff <= atol + rtol * np.abs(expected.astype(np.float64))))
        out[key] = KeyCheck(key, f"atol={atol:g}" + (f",rtol={rtol:g}" if rtol else ""), float(diff.max()), ok)
    for name in STRING_KEYS:
        expected = info["dataset"]["strings"][name]
        mine = [list(view.get(name, [])) for view in views]
        if name == "instance":
            mine = [[os.path.relpath(p, root) for p in row] for row in mine]
        out[f"strings.{name}"] = KeyCheck(f"strings.{name}", "exact", float(mine != expected), mine == expected)
    return out


def failures(checks: dict[str, KeyCheck]) -> list[str]:
    """One line per failed key (empty when the batch matches)."""
    return [f"{c.key}: {c.note or f'worst {c.worst:.3g} ({c.rule})'}" for c in checks.values() if not c.ok]
