"""Several training sources mixed by weight: ``4000 @ BEDLAM_Multi(...) + 1000 @ Labels(...)``.

`MixtureDataset` is the reference's ``CatDataset`` of ``ResizedDataset`` parts: part i contributes ``samples_i``
indices per epoch; at ``set_epoch(e)`` each part draws ``default_rng(e + 777).permutation(len(source))``, repeated
until it covers ``samples_i`` (a source smaller than its share repeats, a larger one is subsampled, fresh each
epoch); a part without ``samples`` is its source, every start frame once. Index ``(idx, ar_idx, V)`` like a source;
the batch sampler (`tasks.training.data.buckets`) shuffles across parts, so batches mix sources. Every view carries
the supervision flags (``has_depth``, ``has_msk``, ``pseudo``) so views of different sources collate together.

Two ways to say a mixture, one meaning: the reference's string (`parse_mixture`, read by a small parser over Python's
syntax tree: source names and keyword literals only, nothing is evaluated) and the typed config
(`tasks.training.data.options.MixtureOptions`, the YAML form). `build_mixture` takes either.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

import numpy as np
import torch

from tasks.training.data.errors import MixtureError
from tasks.training.data.options import BedlamSource, LabelsSource, MixtureOptions
from tasks.training.data.views import MultiViewSource

EPOCH_SEED_OFFSET = 777  # a part's permutation is default_rng(epoch + 777)
SOURCE_NAMES = {"BEDLAM_Multi": "bedlam", "BEDLAM": "bedlam", "Labels": "labels", "LabelBuild": "labels"}
# keyword of the string form -> field of the typed form (transform and n_corres are translated separately)
ARGUMENTS = {"ROOT": "root", "root": "root", "split": "split", "resolution": "resolution", "num_views": "num_views",
             "seed": "seed", "aug_crop": "aug_crop", "seq_aug_crop": "seq_aug_crop", "allow_repeat": "allow_repeat",
             "max_interval": "max_interval", "max_humans": "max_humans", "people": "people",
             "color_jitter": "color_jitter"}
TRANSFORMS = {"ImgNorm": False, "SeqColorJitter": True}
# The reference constructor's defaults for what a string leaves out (the typed form defaults to the real run's)
STRING_DEFAULTS = {"aug_crop": 0, "color_jitter": False, "allow_repeat": False, "seed": None}


class MixtureDataset(torch.utils.data.Dataset):
    """Parts ``(source, samples or None)`` concatenated; see the module doc."""

    def __init__(self, parts: Sequence[tuple[MultiViewSource, int | None]]):
        if not parts:
            raise MixtureError("a mixture needs at least one source")
        first = parts[0][0]
        for source, _ in parts[1:]:
            if source.resolutions != first.resolutions or source.num_views != first.num_views:
                raise MixtureError(f"{source!r} has other resolutions or views than {first!r}")
        self.parts = [(source, samples) for source, samples in parts]
        self.resolutions, self.num_views = first.resolutions, first.num_views
        self._sizes = np.array([len(s) if n is None else n for s, n in self.parts])
        self._ends = np.cumsum(self._sizes)
        for source, _ in self.parts:
            if len(source) == 0:
                raise MixtureError(f"{source!r} has no samples (sequences shorter than {source.num_views} frames?)")
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's indices of every part with a sample count."""
        self._maps: list[np.ndarray | None] = []
        for source, samples in self.parts:
            if samples is None:
                self._maps.append(None)
                continue
            order = np.random.default_rng(seed=epoch + EPOCH_SEED_OFFSET).permutation(len(source))
            self._maps.append(np.concatenate([order] * (1 + (samples - 1) // len(source)))[:samples])

    def __len__(self) -> int:
        return int(self._ends[-1])

    def locate(self, idx: int) -> tuple[int, int]:
        """(part, the part source's own index) of mixture index `idx` this epoch."""
        if not 0 <= idx < len(self):
            raise IndexError(f"sample {idx} of {len(self)}")
        part = int(np.searchsorted(self._ends, idx, "right"))
        local = idx - (int(self._ends[part - 1]) if part else 0)
        mapping = self._maps[part]
        return part, int(local if mapping is None else mapping[local])

    def __getitem__(self, index) -> list[dict]:
        if isinstance(index, tuple | list | np.ndarray):
            idx, ar_idx, nview = (int(i) for i in index)
            part, local = self.locate(idx)
            return self.parts[part][0][(local, ar_idx, nview)]
        part, local = self.locate(int(index))
        return self.parts[part][0][local]

    def __repr__(self) -> str:
        return " + ".join(f"{'' if n is None else f'{n} @ '}{s!r}" for s, n in self.parts)


# ------------------------------------------------------------------------------------------------------------------
# The string form
# ------------------------------------------------------------------------------------------------------------------


def _terms(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _terms(node.left) + _terms(node.right)
    return [node]


def _literal(node: ast.expr, name: str):
    if name == "transform":
        key = node.id if isinstance(node, ast.Name) else node.value if isinstance(node, ast.Constant) else None
        if key not in TRANSFORMS:
            raise MixtureError(f"transform must be {' or '.join(TRANSFORMS)} (got {ast.unparse(node)})")
        return TRANSFORMS[key]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise MixtureError(f"{name}={ast.unparse(node)} is not a literal (resolve ${{...}} and names first)") from None


def _source(term: ast.expr) -> BedlamSource | LabelsSource:
    samples = None
    if isinstance(term, ast.BinOp) and isinstance(term.op, ast.MatMult):
        if not (isinstance(term.left, ast.Constant) and type(term.left.value) is int):
            raise MixtureError(f"the count before @ must be an integer (got {ast.unparse(term.left)})")
        samples, term = term.left.value, term.right
    if not (isinstance(term, ast.Call) and isinstance(term.func, ast.Name)):
        raise MixtureError(f"expected 'N @ Source(key=value, ...)' or 'Source(...)', got {ast.unparse(term)!r}")
    name = term.func.id
    if name not in SOURCE_NAMES:
        raise MixtureError(f"unknown source {name} (known: {', '.join(SOURCE_NAMES)})")
    if term.args:
        raise MixtureError(f"{name}: give every argument by name (got {len(term.args)} positional)")
    out = {"source": SOURCE_NAMES[name], **STRING_DEFAULTS, "samples": samples}
    for keyword in term.keywords:
        key = keyword.arg
        value = _literal(keyword.value, key or "**")
        if key == "transform":
            out["color_jitter"] = value
        elif key in ("n_corres", "nneg"):
            if value not in (0, None):
                raise MixtureError(f"{name}: {key}={value} is not supported (training uses no correspondences)")
        elif key in ARGUMENTS:
            out[ARGUMENTS[key]] = value
        else:
            raise MixtureError(f"{name}: unknown argument {key} (known: transform, n_corres, {', '.join(ARGUMENTS)})")
    if isinstance(out.get("resolution"), int):
        out["resolution"] = [(out["resolution"],) * 2]
    elif isinstance(out.get("resolution"), tuple) and out["resolution"] and isinstance(out["resolution"][0], int):
        out["resolution"] = [out["resolution"]]
    missing = [k for k in ("root", "resolution") if k not in out]
    if missing:
        raise MixtureError(f"{name}: missing {' and '.join('ROOT' if k == 'root' else k for k in missing)}")
    from tasks.errors import OptionsError
    from tasks.options import build

    try:
        return build(BedlamSource if out["source"] == "bedlam" else LabelsSource, out)
    except OptionsError as err:
        raise MixtureError(f"{name}: {err}") from None


def parse_mixture(text: str) -> MixtureOptions:
    """``'4000 @ BEDLAM_Multi(split="train", ROOT="...", resolution=[(512, 384), ...], ...) + ...'`` -> the typed
    options. Omitted arguments take the reference constructor's defaults (no crop augmentation, no jitter, no
    repeats, unseeded). Raises `MixtureError` / `OptionsError` (one line) on anything else."""
    from tasks.options import build

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise MixtureError(f"cannot read the mixture {text[:60]!r}: {err.msg} at column {err.offset}") from None
    return build(MixtureOptions, {"sources": [_source(term).model_dump() for term in _terms(tree.body)]})


# ------------------------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------------------------


def build_source(options: BedlamSource | LabelsSource, flags: bool = True, targets=None) -> MultiViewSource:
    """The source dataset of one typed entry (`flags`: add the supervision flags to BEDLAM views too)."""
    if options.source == "bedlam":
        from tasks.training.data.bedlam import BedlamDataset

        return BedlamDataset(options.root, options.split, flags=flags, **options.loader_kwargs())
    from tasks.training.data.labels import LabelBuildDataset

    return LabelBuildDataset(options.root, options.split, people=options.people, targets=targets,
                             **options.loader_kwargs())


def build_mixture(spec: str | MixtureOptions | dict | list, targets=None) -> MixtureDataset:
    """A `MixtureDataset` from the string form, the typed options, or their dict / list form (a YAML config's
    ``sources:`` list). `targets`: the distillation hook given to label sources."""
    from tasks.options import build

    if isinstance(spec, str):
        spec = parse_mixture(spec)
    elif isinstance(spec, list):
        spec = build(MixtureOptions, {"sources": spec})
    elif isinstance(spec, dict):
        spec = build(MixtureOptions, spec)
    return MixtureDataset([(build_source(s, flags=True, targets=targets), s.samples) for s in spec.sources])
