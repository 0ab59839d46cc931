"""TUM RGB-D dynamic sequences (https://cvg.cit.tum.de/data/datasets/rgbd-dataset): text files, association,
the reference's frame subsets, and the trajectory files the reference writes and reads.

Raw sequence folder: ``rgb.txt`` (``t rgb/<t>.png``), ``groundtruth.txt`` (``t tx ty tz qx qy qz qw``, ~100 Hz),
comment lines starting with ``#``. The reference's subsets (MonST3R ``prepare_tum.py`` for ``tum``; TTT3R
``long_prepare_tum.py`` for ``tum_<N>``): associate rgb and GT stamps (pairs with ``|dt| < 0.02`` s, greedily by
``|dt|``), sort the matches by rgb stamp, then keep ``[::3][:90]`` (``tum``) or ``[:N]`` (``tum_<N>``), and write
``groundtruth_<N>.txt`` (the GT stamp as Python's ``str(float)``, then the original value strings) and the images
into ``rgb_<N>/``. :func:`prepare_sequence` writes those files byte for byte (plus ``rgb_<N>.txt``, the kept image
names one per line, as the parity pack records them); :func:`load_tum` reads prepared or raw folders.

Trajectory files: GT is read as evo's ``read_tum_trajectory_file`` does (quaternion last on disk, returned
scalar first); the prediction the reference writes (``pred_traj.txt``, ``save_tum_poses``) has the quaternion
**w first** (``t x y z qw qx qy qz``), which evo's TUM reader would misread: :func:`read_pred_traj` reads it right.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, BenchmarkLayoutError
from tasks.evaluation.benchmarks.protocol import ProtocolName, benchmark_protocol
from tasks.evaluation.benchmarks.sequence import Benchmark, Sequence, Trajectory

__all__ = ["associate", "load_tum", "prepare_sequence", "read_file_list", "read_pred_traj", "read_tum_trajectory",
           "subset", "write_pred_traj"]

MAX_DT_S = 0.02  # association radius (seconds)


def read_file_list(path: str | os.PathLike) -> dict[float, list[str]]:
    """``stamp d1 d2 ...`` lines -> {stamp: [d1, d2, ...]} as TUM's associate.py reads them (commas and tabs are
    spaces, ``#`` lines and lines with a stamp only are skipped, a repeated stamp keeps its last line)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise BenchmarkFileError(f"cannot read TUM file {path}: {err}") from err
    rows = [[v.strip() for v in line.split(" ") if v.strip() != ""]
            for line in text.replace(",", " ").replace("\t", " ").split("\n") if len(line) > 0 and line[0] != "#"]
    try:
        return dict((float(r[0]), r[1:]) for r in rows if len(r) > 1)
    except ValueError as err:
        raise BenchmarkFileError(f"TUM file {path} has a line that does not start with a time stamp: {err}") from err


def associate(first: dict[float, list[str]], second: dict[float, list[str]], offset: float = 0.0,
              max_difference: float = MAX_DT_S) -> list[tuple[float, float]]:
    """Pairs (a, b) of stamps with ``|a - (b + offset)| < max_difference``, taken greedily by increasing
    difference (ties: smaller a, then smaller b), each stamp used once; returned sorted. Same result as
    TUM's / TTT3R's ``associate``, in O(n log n) instead of its all-pairs list."""
    a = np.array(sorted(first), dtype=np.float64)
    b = np.array(sorted(second), dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return []
    window = 2 * max_difference  # candidates from a wider window; the exact test below decides
    lo = np.searchsorted(b + offset, a - window, side="left")
    hi = np.searchsorted(b + offset, a + window, side="right")
    ia = np.repeat(np.arange(a.size), hi - lo)
    ib = np.concatenate([np.arange(s, e) for s, e in zip(lo, hi)]) if ia.size else np.zeros(0, np.int64)
    diff = np.abs(a[ia] - (b[ib] + offset))
    keep = diff < max_difference
    ia, ib, diff = ia[keep], ib[keep], diff[keep]
    order = np.lexsort((b[ib], a[ia], diff))
    used_a, used_b, matches = set(), set(), []
    for k in order:
        i, j = int(ia[k]), int(ib[k])
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            matches.append((float(a[i]), float(b[j])))
    matches.sort()
    return matches


def subset(matches: list, n_frames: int, stride: int = 1) -> list:
    """The reference's frame subset: ``matches[::stride][:n_frames]``."""
    return matches[::stride][:n_frames]


def _gt_lines(rows: list[tuple[float, list[str]]]) -> str:
    return "".join(f"{' '.join(map(str, [b, *values]))}\n" for b, values in rows)


def prepare_sequence(seq_dir: str | os.PathLike, out_dir: str | os.PathLike, n_frames: int, stride: int = 1,
                     copy_images: bool = True) -> Path:
    """Write ``groundtruth_<N>.txt``, ``rgb_<N>.txt`` and (``copy_images``) ``rgb_<N>/`` for one raw sequence.

    ``N`` is ``n_frames`` (the folder name the reference uses, even when fewer frames were associated).
    """
    seq_dir, out_dir = Path(seq_dir), Path(out_dir)
    rgb, gt = read_file_list(seq_dir / "rgb.txt"), read_file_list(seq_dir / "groundtruth.txt")
    kept = subset(associate(rgb, gt), n_frames, stride)
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / f"groundtruth_{n_frames}.txt", _gt_lines([(b, gt[b]) for _, b in kept]))
    _atomic_write(out_dir / f"rgb_{n_frames}.txt", "".join(f"{rgb[a][0]}\n" for a, _ in kept))
    if copy_images:
        image_dir = out_dir / f"rgb_{n_frames}"
        image_dir.mkdir(exist_ok=True)
        for a, _ in kept:
            shutil.copy(seq_dir / rgb[a][0], image_dir)
    return out_dir


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------------------------
# Trajectory files
# ------------------------------------------------------------------------------------------------------------------


def _read_rows(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise BenchmarkFileError(f"{what} {path} not found")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    try:
        mat = np.array(rows, dtype=np.float64)
    except ValueError as err:
        raise BenchmarkFileError(f"{what} {path} is not a table of numbers: {err}") from err
    if mat.ndim != 2 or mat.shape[1] != 8:
        raise BenchmarkFileError(f"{what} {path} must have 8 columns per line (t x y z + quaternion), "
                                 f"got {mat.shape[-1] if mat.ndim == 2 else 'ragged lines'}")
    return mat


def read_tum_trajectory(path: str | os.PathLike) -> Trajectory:
    """A TUM-format trajectory (``t tx ty tz qx qy qz qw``), returned quaternion scalar first (evo's reader)."""
    mat = _read_rows(Path(path), "TUM trajectory")
    return Trajectory(stamps=mat[:, 0], xyz=mat[:, 1:4], quat_wxyz=np.roll(mat[:, 4:], 1, axis=1))


def read_pred_traj(path: str | os.PathLike) -> Trajectory:
    """The reference's ``pred_traj.txt`` (``t x y z qw qx qy qz``, w first, unlike TUM) as a Trajectory; the
    parsing is the metrics' (:func:`tasks.evaluation.metrics.camera.read_pred_traj`)."""
    from tasks.evaluation.metrics.camera import read_pred_traj as read_rows

    stamps, rows = read_rows(path)
    return Trajectory(stamps=stamps, xyz=rows[:, :3], quat_wxyz=rows[:, 3:].copy())


def write_pred_traj(path: str | os.PathLike, trajectory: Trajectory) -> Path:
    """Write ``pred_traj.txt`` as the reference does (``str`` of each float, quaternion w first)."""
    from tasks.evaluation.metrics.camera import write_pred_traj as write_rows

    write_rows(path, np.concatenate([trajectory.xyz, trajectory.quat_wxyz], axis=1), trajectory.stamps)
    return Path(path)


# ------------------------------------------------------------------------------------------------------------------
# Sequences
# ------------------------------------------------------------------------------------------------------------------


def _sequence_from_raw(name: str, seq_dir: Path, n_frames: int, stride: int, benchmark: str) -> Sequence:
    rgb, gt = read_file_list(seq_dir / "rgb.txt"), read_file_list(seq_dir / "groundtruth.txt")
    matches = associate(rgb, gt)
    kept = subset(matches, n_frames, stride)
    try:
        values = np.array([[float(v) for v in gt[b][:7]] for _, b in kept], dtype=np.float64).reshape(-1, 7)
    except ValueError as err:
        raise BenchmarkFileError(f"{seq_dir / 'groundtruth.txt'} has a non-numeric pose: {err}") from err
    if values.shape[0] and any(len(gt[b]) != 7 for _, b in kept):
        raise BenchmarkFileError(f"{seq_dir / 'groundtruth.txt'} lines must be 't tx ty tz qx qy qz qw'")
    position = {a: i for i, (a, _) in enumerate(matches)}
    traj = Trajectory(stamps=np.array([b for _, b in kept], np.float64), xyz=values[:, :3],
                      quat_wxyz=np.roll(values[:, 3:], 1, axis=1))
    images = tuple(seq_dir / rgb[a][0] for a, _ in kept)
    frame_ids = np.array([position[a] for a, _ in kept], np.int64)
    return Sequence(benchmark, name, images, frame_ids, trajectory=traj)


def _sequence_from_prepared(name: str, seq_dir: Path, n_frames: int, stride: int, benchmark: str) -> Sequence:
    image_dir = seq_dir / f"rgb_{n_frames}"
    images = tuple(sorted(p for p in image_dir.iterdir() if not p.name.startswith(".")))
    traj = read_tum_trajectory(seq_dir / f"groundtruth_{n_frames}.txt")
    if len(images) != len(traj):
        raise BenchmarkFileError(
            f"TUM sequence {name}: {image_dir} has {len(images)} images but groundtruth_{n_frames}.txt "
            f"{len(traj)} poses; prepare the sequence again"
        )
    return Sequence(benchmark, name, images, np.arange(len(images), dtype=np.int64) * stride, trajectory=traj)


def load_tum(root: str | os.PathLike, name: str = "tum", *, protocol: ProtocolName = "reference") -> Benchmark:
    """TUM sequences under ``root`` (one folder per sequence, sorted): prepared ones (``rgb_<N>/`` and
    ``groundtruth_<N>.txt``, the reference's layout) or raw ones (``rgb.txt`` + ``groundtruth.txt``, associated
    here). ``name``: "tum" (90 frames, stride 3) or "tum_<N>" (the first N, stride 1). TUM has no corrected
    behaviour; ``protocol`` is only recorded."""
    spec = benchmark_protocol(name)
    if not name.startswith("tum"):
        raise ValueError(f"not a TUM benchmark name: {name!r}")
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkLayoutError(f"TUM folder {root} does not exist")
    n, stride = spec.n_frames, spec.frame_stride
    sequences = []
    for seq_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if (seq_dir / f"rgb_{n}").is_dir() and (seq_dir / f"groundtruth_{n}.txt").is_file():
            sequences.append(_sequence_from_prepared(seq_dir.name, seq_dir, n, stride, name))
        elif (seq_dir / "rgb.txt").is_file() and (seq_dir / "groundtruth.txt").is_file():
            sequences.append(_sequence_from_raw(seq_dir.name, seq_dir, n, stride, name))
    if not sequences:
        raise BenchmarkLayoutError(
            f"{root} holds no TUM sequence: no sub-folder with rgb_{n}/ + groundtruth_{n}.txt or with rgb.txt + "
            "groundtruth.txt; unpack the rgbd_dataset_freiburg3_* sequences there"
        )
    return Benchmark(name, root, protocol, tuple(sequences))
