"""Reading benchmark pickles without running their code: a restricted unpickler, and ``.pt`` files.

The benchmark files that are pickles (3DPW's ``sequenceFiles/*/*.pkl``, Python-2 pickles read with
``encoding="latin1"``; the ``3dpw_test.pkl`` annotation file; EMDB's ``*_data.pkl``; BEDLAM's ``smplx2smpl.pkl``)
hold only numpy arrays, numpy scalars and Python containers. :func:`load_pickle` resolves exactly the globals those
need (numpy's array and scalar reconstructors, ``numpy.dtype``, and ``_codecs.encode`` restricted to latin-1, which
Python-3 pickles of protocol 2 use for bytes) and refuses anything else with :class:`UnsafePickleError`, before it
is called. Containers (dict, list, tuple, str, int, float, bool, None) need no global at all.

Callers that read richer files (the SMPL model pickle, whose arrays are chumpy / scipy.sparse objects) pass inert
stand-in classes in ``extra``: they only keep the pickled state. RICH's ``.pt`` files go through
:func:`load_torch_file`, i.e. ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import codecs
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tasks.evaluation.benchmarks.errors import BenchmarkFileError, UnsafePickleError

__all__ = ["load_pickle", "load_torch_file"]


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it (bytes written as latin-1 text); no other codec."""
    if codecs.lookup(encoding).name != "iso8859-1" or errors != "strict" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray}
    for package in ("numpy.core", "numpy._core"):  # numpy 1 writes numpy.core, numpy 2 numpy._core
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("_codecs", "encode")] = _latin1_encode
    for module in ("builtins", "__builtin__"):  # sets are the only plain container that needs a global
        allowed[(module, "set")] = set
        allowed[(module, "frozenset")] = frozenset
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, allowed: Mapping[tuple[str, str], Any], encoding: str):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"{module}.{name}") from None


def load_pickle(
    path: str | os.PathLike,
    *,
    encoding: str = "ASCII",
    extra: Mapping[tuple[str, str], Any] | None = None,
    what: str = "benchmark file",
) -> Any:
    """Unpickle ``path`` allowing only plain data (numpy arrays/dtypes/scalars, containers) and ``extra`` globals.

    ``encoding="latin1"`` reads Python-2 pickles (3DPW's sequence files). Raises :class:`UnsafePickleError` when
    the file names any other global (nothing of it is called) and :class:`BenchmarkFileError` when the file is
    missing or not a readable pickle.
    """
    p = Path(path)
    if not p.is_file():
        raise BenchmarkFileError(f"{what} not found: {p}")
    allowed = {**_numpy_globals(), **(extra or {})}
    try:
        with p.open("rb") as f:
            return _RestrictedUnpickler(f, allowed=allowed, encoding=encoding).load()
    except UnsafePickleError as err:
        raise UnsafePickleError(
            f"{what} {p} was refused: it names the pickled global {err} (it could run code; a benchmark file "
            f"holds only numpy arrays and plain containers). Re-download it from the benchmark's site."
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError, OSError) as err:
        raise BenchmarkFileError(
            f"{what} {p} is not a readable pickle ({type(err).__name__}: {err}); re-download it"
        ) from err


def load_torch_file(path: str | os.PathLike, *, what: str = "benchmark file") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors naming the file."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise BenchmarkFileError(f"{what} not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).split("WeightsUnpickler error:", 1)[-1].strip().splitlines()[0]
        raise UnsafePickleError(
            f"{what} {p} was refused by torch.load(weights_only=True): {reason}. Re-download it."
        ) from None
    except Exception as err:  # torch raises many types on a damaged file; all mean the same to the user
        raise BenchmarkFileError(
            f"{what} {p} is not a readable torch file ({type(err).__name__}: {str(err).splitlines()[0]})"
        ) from err
