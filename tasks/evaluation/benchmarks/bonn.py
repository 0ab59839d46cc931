"""Bonn RGB-D Dynamic (https://www.ipb.uni-bonn.de/data/rgbd-dynamic-dataset): depth PNGs, TUM-format poses, and
the reference's frame subsets.

Raw layout: ``<root>/rgbd_bonn_<seq>/{rgb,depth}/<t>.png`` and ``groundtruth.txt`` (``t tx ty tz qx qy qz qw``).
The reference evaluates five sequences (:data:`SEQUENCES`) cut at the same positions of the sorted rgb / depth
lists and of the GT rows: ``[30:140]`` for ``bonn`` (MonST3R ``prepare_bonn.py``: ``rgb_110/``, ``depth_110/``,
``groundtruth_110.txt``) and ``[30:30+N]`` for ``bonn_<N>`` (TTT3R ``long_prepare_bonn.py``, clipped to the
shortest modality). :func:`load_bonn` reads prepared folders or cuts raw ones the same way.

Depth: 16-bit PNG, metres x 5000; 0 = no measurement, read as -1.0 by the metrics' reader
(:func:`tasks.evaluation.metrics.bonn.read_bonn_depth`, which takes the protocol: the reference asserts on a fully
invalid frame).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.protocol import ProtocolName, benchmark_protocol
from tasks.evaluation.benchmarks.sequence import Benchmark, Sequence, Trajectory

__all__ = ["SEQUENCES", "load_bonn"]

SEQUENCES = ("balloon2", "crowd2", "crowd3", "person_tracking2", "synchronous")


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.png"))


def _trajectory(rows: np.ndarray, path: Path) -> Trajectory:
    rows = np.atleast_2d(rows)
    if rows.shape[1] != 8:
        raise BenchmarkFileError(f"Bonn ground truth {path} must have 8 columns (t tx ty tz qx qy qz qw)")
    return Trajectory(stamps=rows[:, 0].copy(), xyz=rows[:, 1:4].copy(), quat_wxyz=np.roll(rows[:, 4:], 1, axis=1))


def _loadtxt(path: Path) -> np.ndarray:
    try:
        return np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as err:
        raise BenchmarkFileError(f"cannot read Bonn ground truth {path}: {err}") from err


def _prepared(name: str, seq_dir: Path, n: int, benchmark: str, first: int) -> Sequence:
    images, depths = _pngs(seq_dir / f"rgb_{n}"), _pngs(seq_dir / f"depth_{n}")
    if len(images) != len(depths):
        raise BenchmarkFileError(f"Bonn sequence {name}: rgb_{n}/ has {len(images)} images, depth_{n}/ "
                                 f"{len(depths)}; prepare the sequence again")
    gt_path = seq_dir / f"groundtruth_{n}.txt"
    traj = _trajectory(_loadtxt(gt_path), gt_path) if gt_path.is_file() else None
    if traj is not None and len(traj) != len(images):
        raise BenchmarkFileError(f"Bonn sequence {name}: {gt_path.name} has {len(traj)} poses for {len(images)} "
                                 "frames")
    ids = np.arange(first, first + len(images), dtype=np.int64)
    return Sequence(benchmark, name, tuple(images), ids, trajectory=traj, depths=tuple(depths))


def _raw(name: str, seq_dir: Path, n: int, benchmark: str, first: int) -> Sequence:
    images, depths = _pngs(seq_dir / "rgb"), _pngs(seq_dir / "depth")
    gt_path = seq_dir / "groundtruth.txt"
    gt = _loadtxt(gt_path) if gt_path.is_file() else None
    count = min(len(images) - first, len(depths) - first, n, *(() if gt is None else (len(gt) - first,)))
    if count <= 0:
        raise BenchmarkFileError(f"Bonn sequence {name} has no frame after the first {first} ({seq_dir})")
    traj = None if gt is None else _trajectory(gt[first:first + count], gt_path)
    ids = np.arange(first, first + count, dtype=np.int64)
    return Sequence(benchmark, name, tuple(images[first:first + count]), ids, trajectory=traj,
                    depths=tuple(depths[first:first + count]))


def load_bonn(root: str | os.PathLike, name: str = "bonn", *, protocol: ProtocolName = "reference",
              sequences: tuple[str, ...] = SEQUENCES) -> Benchmark:
    """Bonn sequences under ``root`` (``rgbd_bonn_<seq>/``): prepared (``rgb_<N>/``, ``depth_<N>/``) or raw
    (``rgb/``, ``depth/``, cut at ``[30:30+N]``). ``name``: "bonn" (110 frames) or "bonn_<N>". ``protocol`` is kept
    on the result for reading the depth images (``read_bonn_depth(path, benchmark.protocol)``)."""
    spec = benchmark_protocol(name)
    if not name.startswith("bonn"):
        raise ValueError(f"not a Bonn benchmark name: {name!r}")
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkLayoutError(f"Bonn folder {root} does not exist")
    n, first = spec.n_frames, spec.first_frame
    found, missing = [], []
    for seq in sequences:
        seq_dir = root / f"rgbd_bonn_{seq}"
        if (seq_dir / f"rgb_{n}").is_dir() and (seq_dir / f"depth_{n}").is_dir():
            found.append(_prepared(seq, seq_dir, n, name, first))
        elif (seq_dir / "rgb").is_dir() and (seq_dir / "depth").is_dir():
            found.append(_raw(seq, seq_dir, n, name, first))
        else:
            missing.append(seq)
    if not found:
        raise BenchmarkLayoutError(
            f"{root} holds none of the Bonn sequences {', '.join(sequences)} (expected rgbd_bonn_<seq>/ with "
            f"rgb/ + depth/ or rgb_{n}/ + depth_{n}/); unpack rgbd_bonn_dataset there"
        )
    return Benchmark(name, root, protocol, tuple(found), missing=tuple(missing))
