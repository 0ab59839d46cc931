"""Stand-ins for the licensed SMPL files (generated with the real shapes, never committed) and release-like trees
built around the parity pack's samples (which ship the annotation files but no images)."""

from __future__ import annotations

import io
import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np

PACK = Path(__file__).resolve().parents[2] / "fixtures" / "eval_parity"
FORMATS = PACK / "formats"
N_SMPL, N_SMPLX = 6890, 10475


# ------------------------------------------------------------------------------------------------------------------
# SMPL files
# ------------------------------------------------------------------------------------------------------------------


def smpl_arrays(seed: int) -> dict[str, np.ndarray]:
    """Random arrays with the names and shapes of a SMPL model (10 shape components, as v1.0.0 and smplx's npz;
    ``posedirs`` (6890, 3, 207) float32, small, as the evaluation poses the ground truth with it)."""
    rng = np.random.default_rng(seed)
    j_regressor = np.zeros((24, N_SMPL))
    for j in range(24):
        j_regressor[j, rng.choice(N_SMPL, 8, replace=False)] = 1 / 8
    weights = rng.random((N_SMPL, 24)) ** 8
    return {
        "v_template": rng.normal(0, 0.3, (N_SMPL, 3)),
        "shapedirs": rng.normal(0, 1e-2, (N_SMPL, 3, 10)),
        "J_regressor": j_regressor,
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.stack([np.r_[2**32 - 1, np.arange(23) // 2], np.arange(24)]).astype(np.int64),
        "f": rng.integers(0, N_SMPL, (13776, 3)).astype(np.uint32),
        "posedirs": (rng.standard_normal((N_SMPL, 3, 207), dtype=np.float32) * 1e-3),
    }


def write_smpl_npz(path: Path, seed: int) -> Path:
    np.savez(path, **smpl_arrays(seed))
    return path


def write_smpl_pkl(path: Path, seed: int) -> Path:
    """A pickle shaped like the official SMPL v1.1.0 file: ``J_regressor`` a scipy ``csc_matrix`` (scipy's own
    pickle), ``shapedirs`` a chumpy ``Ch`` with its array in ``x`` (chumpy does not install with numpy 2: written
    through a stand-in class that carries chumpy's module name), the rest numpy arrays."""
    import scipy.sparse

    arrays = smpl_arrays(seed)
    chumpy, chumpy_ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:  # chumpy.ch.Ch: its __getstate__ is its __dict__ without the caches
        pass

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    chumpy_ch.Ch = Ch
    shapedirs = Ch()
    shapedirs.__dict__.update({"x": arrays["shapedirs"], "_dirty_vars": set(), "_itr": None})
    content = {**arrays, "shapedirs": shapedirs, "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
               "bs_style": "lbs", "bs_type": "lrotmin"}
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": chumpy_ch})
    try:
        path.write_bytes(pickle.dumps(content, protocol=2))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


def smplx2smpl_triplets(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(6890, 3) SMPL-X vertex ids and (6890, 3) float32 weights: each SMPL vertex a convex combination of 3
    distinct SMPL-X vertices (as in the real matrix, whose rows sum to 1)."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(1, N_SMPLX // 3, (N_SMPL, 3))
    steps[:, 0] = rng.integers(0, N_SMPLX, N_SMPL)
    cols = np.cumsum(steps, axis=1) % N_SMPLX  # three distinct columns per row
    return cols, rng.dirichlet([1, 1, 1], N_SMPL).astype(np.float32)


def smplx2smpl_sparse(seed: int = 0):
    """The stand-in matrix as a (6890, 10475) float32 torch sparse tensor (GVHMR's smplx2smpl_sparse.pt)."""
    import torch

    cols, weights = smplx2smpl_triplets(seed)
    rows = np.repeat(np.arange(N_SMPL), 3)
    index = torch.from_numpy(np.stack([rows, cols.reshape(-1)]))
    values = torch.from_numpy(weights.reshape(-1))
    return torch.sparse_coo_tensor(index, values, (N_SMPL, N_SMPLX), check_invariants=True).coalesce()


def smplx2smpl_dense(seed: int = 0) -> np.ndarray:
    """The stand-in matrix dense, (6890, 10475) float32 (the reference's smplx2smpl.pkl holds it dense)."""
    cols, weights = smplx2smpl_triplets(seed)
    m = np.zeros((N_SMPL, N_SMPLX), np.float32)
    m.reshape(-1)[(np.arange(N_SMPL)[:, None] * N_SMPLX + cols).reshape(-1)] = weights.reshape(-1)
    return m


def write_smpl_files(folder: Path) -> Path:
    """A folder in the reference's layout: smpl/SMPL_{NEUTRAL,MALE,FEMALE}.npz, smpl/J_regressor_h36m.npy and
    smplx/smplx2smpl_sparse.pt (GVHMR's format of the matrix; the .pkl format is tested on its own)."""
    import torch

    (folder / "smpl").mkdir(parents=True, exist_ok=True)
    (folder / "smplx").mkdir(exist_ok=True)
    for seed, g in enumerate(("NEUTRAL", "MALE", "FEMALE")):
        write_smpl_npz(folder / "smpl" / f"SMPL_{g}.npz", seed)
    rng = np.random.default_rng(7)
    h36m = rng.random((17, N_SMPL)) * (rng.random((17, N_SMPL)) < 0.01)
    np.save(folder / "smpl" / "J_regressor_h36m.npy", h36m / h36m.sum(1, keepdims=True))
    torch.save(smplx2smpl_sparse(), folder / "smplx" / "smplx2smpl_sparse.pt")
    return folder


# ------------------------------------------------------------------------------------------------------------------
# Release-like trees around the pack's samples
# ------------------------------------------------------------------------------------------------------------------


def jpeg_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buf, "JPEG", quality=50)
    return buf.getvalue()


def threedpw_tree(root: Path, with_images: bool = True) -> Path:
    """The pack's 3DPW sample as a release: sequenceFiles/test, 3dpw_test.pkl and imageFiles (1080x1920 JPEGs)."""
    shutil.copytree(FORMATS / "3dpw", root)
    if with_images:
        folder = root / "imageFiles" / "downtown_synthetic_00"
        folder.mkdir(parents=True)
        data = jpeg_bytes(1080, 1920)
        for k in range(7):
            (folder / f"image_{k:05d}.jpg").write_bytes(data)
    return root


def emdb_tree(root: Path, n_images: int = 12) -> Path:
    """The pack's EMDB sample with its images/ folder (empty placeholder files, named as EMDB names them)."""
    shutil.copytree(FORMATS / "emdb", root)
    images = root / "P0" / "09_outdoor_walk" / "images"
    images.mkdir()
    for i in range(n_images):
        (images / f"{i:05d}.jpg").write_bytes(b"")
    return root


def rich_tree(root: Path, vids: list[str], n_images: int = 20, first: int = 0) -> Path:
    """Image folders <root>/<vid>/<nnnnn>_<cam>.jpeg (4112x3008, RICH's size) numbered from ``first``."""
    data = jpeg_bytes(4112, 3008)
    for vid in vids:
        folder = root / vid
        folder.mkdir(parents=True)
        for i in range(first, first + n_images):
            (folder / f"{i:05d}_{vid[-2:]}.jpeg").write_bytes(data)
    return root
