"""Reading the per-frame people of a BEDLAM folder (``smpl/<frame>.pkl``) through the restricted unpickler.

A pickle can run any code while it loads, so only plain data is allowed (`tasks.pickles`: numpy arrays and scalars,
Python containers); anything else is refused with the global it asked for.
"""

from __future__ import annotations

from pathlib import Path

from tasks.pickles import RefusedPickle, restricted_load

__all__ = ["RefusedPickle", "load_people"]


def load_people(path: str | Path):
    """The object pickled at `path` (a list of person dicts), numpy arrays and builtins only."""
    with open(path, "rb") as handle:
        return restricted_load(handle)
