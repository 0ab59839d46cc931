"""Pickles from data files, read without running their code: one restricted unpickler for every dataset we read.

A pickle can call any global while it loads. The data files we read as pickles (BEDLAM's per-frame people, 3DPW's
Python-2 sequence files and annotation file, EMDB's ``*_data.pkl``, BEDLAM's ``smplx2smpl.pkl``) hold only numpy
arrays, numpy scalars and Python containers, so :func:`restricted_load` resolves exactly the globals those need
(numpy's array and scalar reconstructors under their numpy 1 and numpy 2 module names, ``numpy.dtype``, sets, and
``_codecs.encode`` restricted to latin-1, which protocol-2 pickles use for bytes) plus what a caller passes in
``extra`` (inert stand-ins), and raises :class:`RefusedPickle` for anything else before it is called. Containers
(dict, list, tuple, str, int, float, bool, None) need no global at all. Callers wrap the error in their own
one-line message naming the file.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Mapping
from typing import IO, Any

import numpy as np


class RefusedPickle(pickle.UnpicklingError):
    """The pickle names a global outside the allowed set (it could run code); nothing of it was called."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it (bytes written as latin-1 text); no other codec."""
    if codecs.lookup(encoding).name != "iso8859-1" or errors != "strict" or not isinstance(text, str):
        raise RefusedPickle(f"_codecs.encode with codec {encoding!r} is not allowed")
    return codecs.encode(text, "latin1")


def _plain_data_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {("numpy", "dtype"): np.dtype, ("numpy", "ndarray"): np.ndarray,
                                           ("_codecs", "encode"): _latin1_encode}
    for package in ("numpy.core", "numpy._core"):  # numpy 1 writes numpy.core, numpy 2 numpy._core
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    for module in ("builtins", "__builtin__"):  # sets are the only plain container that needs a global
        allowed[(module, "set")] = set
        allowed[(module, "frozenset")] = frozenset
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], *, allowed: Mapping[tuple[str, str], Any], encoding: str):
        super().__init__(file, encoding=encoding)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise RefusedPickle(f"refuses to load {module}.{name}") from None


def restricted_load(file: IO[bytes], *, encoding: str = "ASCII",
                    extra: Mapping[tuple[str, str], Any] | None = None) -> Any:
    """Unpickle the open binary `file` allowing plain data only (see the module docstring) and the `extra` globals.

    ``encoding="latin1"`` reads Python-2 pickles. Raises :class:`RefusedPickle` for any other global.
    """
    return _RestrictedUnpickler(file, allowed={**_plain_data_globals(), **(extra or {})}, encoding=encoding).load()
