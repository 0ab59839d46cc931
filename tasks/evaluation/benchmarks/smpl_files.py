"""The SMPL files the human benchmarks need, supplied by the user (licensed; nothing here downloads them).

Human3R predicts SMPL-X bodies; 3DPW and EMDB ground truth is SMPL, and RICH's SMPL-X ground truth is compared on
SMPL vertices too. The reference (``src/dust3r/smpl_model.py``) needs:

* ``smplx2smpl.pkl``: a pickled dict ``{"matrix": (6890, 10475) array}``, SMPL vertices as linear combinations of
  SMPL-X vertices (BEDLAM's ``utils`` download, bedlam.is.tue.mpg.de; Multi-HMR and Human3R use it). GVHMR's
  ``smplx2smpl_sparse.pt`` (a (6890, 10475) sparse tensor) is read too.
* ``J_regressor_h36m.npy``: (17, 6890) H36M joint regressor; rows :data:`~.protocol.H36M_TO_LSP14` give 3DPW's 14.
* the SMPL models ``SMPL_{NEUTRAL,MALE,FEMALE}.{npz,pkl}`` (smpl.is.tue.mpg.de, "SMPL for Python" v1.1.0): the
  neutral model's ``J_regressor`` (24, 6890) is the 24-joint regressor; the gendered ones pose the ground truth
  and give 3DPW's rest pelvis J0.

They are found in one folder (argument or ``$HUMAN3R_SMPL_FILES``), directly or in ``smpl/`` and ``smplx/``
sub-folders (the reference's ``src/models`` layout). SMPL ``.pkl`` files hold chumpy and scipy.sparse objects; they
are read through the restricted unpickler with inert stand-ins that keep only the arrays (no chumpy, no scipy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, ConversionFileError
from tasks.evaluation.benchmarks.pickles import load_pickle, load_torch_file
from tasks.evaluation.benchmarks.protocol import H36M_TO_LSP14

__all__ = ["SMPL_FILES_ENV", "SmplConversion", "SmplModel", "find_smpl_file", "load_h36m_regressor",
           "load_smpl_conversion", "load_smpl_model", "load_smplx2smpl", "resolve_smpl_folder"]

SMPL_FILES_ENV = "HUMAN3R_SMPL_FILES"
NUM_SMPL_VERTICES = 6890
NUM_SMPLX_VERTICES = 10475
SMPLX2SMPL_NAMES = ("smplx2smpl.pkl", "smplx2smpl_sparse.pt")
H36M_REGRESSOR_NAMES = ("J_regressor_h36m.npy",)
SMPL_MODEL_NAMES = {  # the reference's names first, then the v1.1.0 download's
    "neutral": ("SMPL_NEUTRAL.npz", "SMPL_NEUTRAL.pkl", "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"),
    "male": ("SMPL_MALE.npz", "SMPL_MALE.pkl", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl"),
    "female": ("SMPL_FEMALE.npz", "SMPL_FEMALE.pkl", "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"),
}
GET_FILES = (
    f"put smplx2smpl.pkl (BEDLAM 'utils' download), J_regressor_h36m.npy and SMPL_NEUTRAL/MALE/FEMALE (.npz or the "
    f"v1.1.0 .pkl from smpl.is.tue.mpg.de) in one folder and pass it (--smpl-files) or set ${SMPL_FILES_ENV}"
)


def resolve_smpl_folder(folder: str | os.PathLike | None = None) -> Path:
    """The folder of SMPL files: ``folder`` or ``$HUMAN3R_SMPL_FILES``."""
    source = "argument"
    if folder is None:
        folder, source = os.environ.get(SMPL_FILES_ENV), f"${SMPL_FILES_ENV}"
        if not folder:
            raise ConversionFileError(f"no SMPL files folder given and ${SMPL_FILES_ENV} is not set: {GET_FILES}")
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise ConversionFileError(f"SMPL files folder {p} (from {source}) does not exist: {GET_FILES}")
    return p


def find_smpl_file(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` in ``folder``, ``folder/smpl`` or ``folder/smplx``."""
    for sub in (folder, folder / "smpl", folder / "smplx"):
        for name in names:
            if (sub / name).is_file():
                return sub / name
    return None


def _shape_error(path: Path, what: str, got: tuple, want: tuple) -> ConversionFileError:
    return ConversionFileError(f"{what} {path} has shape {got}, expected {want}: not the right file")


# ------------------------------------------------------------------------------------------------------------------
# smplx2smpl and the H36M regressor
# ------------------------------------------------------------------------------------------------------------------


def load_smplx2smpl(path: str | os.PathLike):
    """The SMPL-X -> SMPL vertex matrix as a (6890, 10475) float32 sparse COO tensor.

    ``.pkl``: ``{"matrix": ndarray}`` (the reference's file; cast to float32 as the reference does);
    ``.pt``: a dense or sparse tensor (GVHMR's ``smplx2smpl_sparse.pt``), read with ``weights_only=True``.
    """
    import torch

    path = Path(path)
    want = (NUM_SMPL_VERTICES, NUM_SMPLX_VERTICES)
    try:
        if path.suffix == ".pt":
            matrix = load_torch_file(path, what="smplx2smpl matrix")
            if not isinstance(matrix, torch.Tensor):
                raise ConversionFileError(f"smplx2smpl matrix {path} does not hold a tensor")
            if tuple(matrix.shape) != want:
                raise _shape_error(path, "smplx2smpl matrix", tuple(matrix.shape), want)
            return (matrix if matrix.is_sparse else matrix.to_sparse()).float().coalesce()
        data = load_pickle(path, what="smplx2smpl matrix")
    except BenchmarkFileError as err:
        raise ConversionFileError(str(err)) from None
    if not isinstance(data, dict) or not isinstance(data.get("matrix"), np.ndarray):
        raise ConversionFileError(f"smplx2smpl matrix {path} is not a dict with an array 'matrix'")
    dense = data.pop("matrix")
    if dense.shape != want:
        raise _shape_error(path, "smplx2smpl matrix", dense.shape, want)
    rows, cols = np.nonzero(dense)  # ~1.5 non-zeros per row: keep those (the dense float32 is 288 MB)
    values = torch.from_numpy(dense[rows, cols].astype(np.float32))
    index = torch.from_numpy(np.stack([rows, cols]))
    return torch.sparse_coo_tensor(index, values, want, check_invariants=True).coalesce()


def load_h36m_regressor(path: str | os.PathLike) -> np.ndarray:
    """``J_regressor_h36m.npy`` -> (17, 6890) float32."""
    path = Path(path)
    try:
        reg = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConversionFileError(f"cannot read the H36M regressor {path}: {err}") from err
    if reg.shape != (17, NUM_SMPL_VERTICES):
        raise _shape_error(path, "H36M regressor", reg.shape, (17, NUM_SMPL_VERTICES))
    return reg.astype(np.float32)


# ------------------------------------------------------------------------------------------------------------------
# SMPL models (npz, or the v1.1.0 pickle with chumpy / scipy.sparse stand-ins)
# ------------------------------------------------------------------------------------------------------------------


class _PickledState:
    """Inert stand-in for an object of the SMPL pickle: keeps the pickled state, runs no code."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state


class _ChumpyArray(_PickledState):
    """A chumpy ``Ch``: its value is the array in the ``x`` of its state."""

    def value(self) -> np.ndarray:
        x = self.state.get("x") if isinstance(self.state, dict) else None
        x = x.value() if isinstance(x, _ChumpyArray) else x
        if not isinstance(x, np.ndarray):
            raise ValueError("a chumpy object without a plain array 'x' (an expression, not a stored value)")
        return x


class _SparseMatrix(_PickledState):
    """A scipy.sparse CSC / CSR matrix: rebuilt densely from ``data``, ``indices``, ``indptr`` and the shape."""

    row_major = False

    def value(self) -> np.ndarray:
        s = self.state
        shape = tuple(s.get("_shape", s.get("shape")))
        data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
        dense = np.zeros(shape if self.row_major else shape[::-1], dtype=data.dtype)
        for i in range(len(indptr) - 1):
            dense[i, indices[indptr[i]:indptr[i + 1]]] = data[indptr[i]:indptr[i + 1]]
        return dense if self.row_major else dense.T


class _SparseRows(_SparseMatrix):
    row_major = True


def _reconstructor(cls, base, state):
    """``copy_reg._reconstructor`` for the stand-ins only (protocol 0/1 pickles of new-style objects)."""
    if not (isinstance(cls, type) and issubclass(cls, _PickledState)):
        raise TypeError(f"refusing to rebuild {cls!r}")
    return object.__new__(cls)


def _smpl_pickle_globals() -> dict[tuple[str, str], Any]:
    extra: dict[tuple[str, str], Any] = {("chumpy.ch", "Ch"): _ChumpyArray}
    for module in ("scipy.sparse.csc", "scipy.sparse._csc"):
        extra[(module, "csc_matrix")] = _SparseMatrix
    for module in ("scipy.sparse.csr", "scipy.sparse._csr"):
        extra[(module, "csr_matrix")] = _SparseRows
    for module in ("copy_reg", "copyreg"):
        extra[(module, "_reconstructor")] = _reconstructor
    for module in ("__builtin__", "builtins"):
        extra[(module, "object")] = object
    return extra


@dataclass(frozen=True)
class SmplModel:
    """The arrays of one SMPL model file (float64 as stored or converted)."""

    path: Path
    arrays: dict  # name -> array: v_template (6890, 3), shapedirs (6890, 3, B), J_regressor (24, 6890), ...

    def rest_pelvis(self, betas: np.ndarray) -> np.ndarray:
        """J0 of the rest shape: ``J_regressor[0] @ (v_template + shapedirs[..., :10] @ betas)``. (10,) -> (3,)."""
        betas = np.asarray(betas, np.float64).reshape(-1)
        shaped = self.arrays["v_template"] + self.arrays["shapedirs"][:, :, : betas.shape[0]] @ betas
        return self.arrays["J_regressor"][0] @ shaped

    @property
    def j_regressor(self) -> np.ndarray:
        """(24, 6890) float32: the SMPL joint regressor (the reference's ``J_regressor[:24]``)."""
        return self.arrays["J_regressor"][:24].astype(np.float32)


def load_smpl_model(path: str | os.PathLike) -> SmplModel:
    """A SMPL model from ``.npz`` (smplx's chumpy-free format) or the official ``.pkl`` (restricted unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise ConversionFileError(f"SMPL model {path} not found: {GET_FILES}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                raw = {k: data[k] for k in data.files}
        else:
            raw = load_pickle(path, encoding="latin1", extra=_smpl_pickle_globals(), what="SMPL model")
    except (BenchmarkFileError, OSError, ValueError) as err:
        raise ConversionFileError(f"cannot read SMPL model {path}: {err}") from None
    if not isinstance(raw, dict):
        raise ConversionFileError(f"SMPL model {path} is not a dict of arrays")
    arrays, problems = {}, []
    for key, value in raw.items():
        try:
            if isinstance(value, _ChumpyArray | _SparseMatrix):
                value = value.value()
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            problems.append(f"{key}: {err}")
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
            arrays[key] = value.astype(np.float64) if value.dtype.kind == "f" else value
    want = {"v_template": (NUM_SMPL_VERTICES, 3), "J_regressor": (24, NUM_SMPL_VERTICES)}
    for key, shape in want.items():
        if key not in arrays:
            problems.append(f"no array {key!r}")
        elif arrays[key].shape != shape:
            problems.append(f"{key!r} has shape {arrays[key].shape}, expected {shape}")
    sd = arrays.get("shapedirs")
    if sd is None or sd.ndim != 3 or sd.shape[:2] != (NUM_SMPL_VERTICES, 3) or sd.shape[2] < 10:
        problems.append(f"'shapedirs' is {None if sd is None else sd.shape}, expected (6890, 3, >=10)")
    if problems:
        raise ConversionFileError(
            f"{path} is not a usable SMPL model: {'; '.join(problems)} (convert it to .npz with smplx's "
            "tools/clean_ch.py, or use the v1.1.0 download)"
        )
    if "J_regressor" in arrays:
        arrays["J_regressor"] = arrays["J_regressor"].astype(np.float64)
    return SmplModel(path, arrays)


# ------------------------------------------------------------------------------------------------------------------
# Everything one evaluation needs
# ------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmplConversion:
    """SMPL-X -> SMPL vertices, and SMPL vertices -> the benchmark's joints."""

    smplx2smpl: Any  # torch sparse (6890, 10475) float32
    j_regressor_24: np.ndarray  # (24, 6890) float32 (SMPL neutral J_regressor)
    j_regressor_h36m: np.ndarray  # (17, 6890) float32

    def regressor(self, joint_set: str) -> np.ndarray:
        """(J, 6890) float32 for ``"smpl24"`` (24 joints) or ``"h36m14"`` (3DPW's 14, LSP order)."""
        if joint_set == "smpl24":
            return self.j_regressor_24
        if joint_set == "h36m14":
            return self.j_regressor_h36m[list(H36M_TO_LSP14)]
        raise ValueError(f"unknown joint set {joint_set!r} (smpl24 or h36m14)")

    def to_smpl(self, vertices):
        """SMPL-X vertices (..., 10475, 3) tensor -> SMPL vertices (..., 6890, 3) (``smplx2smpl @ v``)."""
        import torch

        v = torch.as_tensor(vertices, dtype=torch.float32)
        flat = v.reshape(-1, NUM_SMPLX_VERTICES, 3).permute(1, 0, 2).reshape(NUM_SMPLX_VERTICES, -1)
        out = torch.sparse.mm(self.smplx2smpl, flat).reshape(NUM_SMPL_VERTICES, -1, 3).permute(1, 0, 2)
        return out.reshape(*v.shape[:-2], NUM_SMPL_VERTICES, 3)


def load_smpl_conversion(folder: str | os.PathLike | None = None) -> SmplConversion:
    """Load the conversion files from ``folder`` (or ``$HUMAN3R_SMPL_FILES``); one error names every missing file."""
    root = resolve_smpl_folder(folder)
    files = {
        "smplx2smpl": find_smpl_file(root, SMPLX2SMPL_NAMES),
        "H36M regressor": find_smpl_file(root, H36M_REGRESSOR_NAMES),
        "SMPL neutral model": find_smpl_file(root, SMPL_MODEL_NAMES["neutral"]),
    }
    absent = [f"{what} ({' or '.join(names)})" for (what, p), names in zip(
        files.items(), (SMPLX2SMPL_NAMES, H36M_REGRESSOR_NAMES, SMPL_MODEL_NAMES["neutral"])) if p is None]
    if absent:
        raise ConversionFileError(f"{root} lacks {', '.join(absent)}: {GET_FILES}")
    return SmplConversion(
        smplx2smpl=load_smplx2smpl(files["smplx2smpl"]),
        j_regressor_24=load_smpl_model(files["SMPL neutral model"]).j_regressor,
        j_regressor_h36m=load_h36m_regressor(files["H36M regressor"]),
    )


def load_smpl_models(folder: str | os.PathLike | None = None,
                     genders: tuple[str, ...] = ("male", "female")) -> dict[str, SmplModel]:
    """The gendered SMPL models (ground-truth posing; 3DPW's J0), keyed by gender."""
    root = resolve_smpl_folder(folder)
    out = {}
    for g in genders:
        p = find_smpl_file(root, SMPL_MODEL_NAMES[g])
        if p is None:
            raise ConversionFileError(f"{root} lacks the SMPL {g} model ({' or '.join(SMPL_MODEL_NAMES[g])}): "
                                      f"{GET_FILES}")
        out[g] = load_smpl_model(p)
    return out
