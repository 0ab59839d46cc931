"""Errors of the training data: each is one line naming the folder or file at fault and what to do about it.

They are usage errors (`tasks.errors.UsageError`): the CLI prints them in red and exits with 2. A training run
cannot go on with data it cannot read, so they are raised, not recorded as rows.
"""

from __future__ import annotations

from tasks.errors import UsageError


class DataLayoutError(UsageError):
    """A data folder is not in the layout its source expects (a missing subfolder or file, an array without a key)."""


class TooManyPeopleError(DataLayoutError):
    """A frame holds more people than the view's person slots (``max_humans``)."""


class LabelBuildError(UsageError):
    """A pseudo-label build cannot be a training source as it is (no full-frame images, no split file)."""


class MixtureError(UsageError):
    """A mixture string or config cannot be read (unknown source or argument, a non-literal value)."""
