"""Reading the per-frame people of a BEDLAM folder (``smpl/<frame>.pkl``) through a restricted unpickler.

A pickle can run any code while it loads, so only the classes a list of person dicts of numpy arrays needs are
allowed (numpy's array and scalar reconstructors under their numpy 1 and numpy 2 module names, and plain builtins);
anything else is refused with the class it asked for.
"""

from __future__ import annotations

import pickle
from pathlib import Path

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"), ("builtins", "frozenset"),
    ("builtins", "str"), ("builtins", "int"), ("builtins", "float"), ("builtins", "bool"), ("builtins", "bytes"),
    ("builtins", "complex"), ("collections", "OrderedDict"), ("_codecs", "encode"),
}


class RefusedPickle(pickle.UnpicklingError):
    """The pickle asked for a class outside the allowed list."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise RefusedPickle(f"refuses to load {module}.{name}")
        if module.startswith("numpy.core."):  # numpy 1 pickles on numpy 2 (same objects, renamed module)
            import numpy as np

            module = module.replace("numpy.core.", "numpy._core.") if hasattr(np, "_core") else module
        return super().find_class(module, name)


def load_people(path: str | Path):
    """The object pickled at `path` (a list of person dicts), numpy arrays and builtins only."""
    with open(path, "rb") as handle:
        return _Unpickler(handle).load()
