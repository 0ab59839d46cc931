"""Errors raised by the human3r package: each names the cause and the next step."""


class Human3RError(Exception):
    """Base class for every error the model package raises on purpose."""


class ConfigError(Human3RError, ValueError):
    """A configuration value is invalid; the message names the field and the value received."""


class CheckpointError(Human3RError):
    """A checkpoint is missing, unreadable, or does not match the network; the message lists every mismatch."""


class InputShapeError(Human3RError, ValueError):
    """An input array has the wrong shape, dtype or range."""


class BodyModelError(Human3RError):
    """The SMPL-X body model file is missing or malformed."""


class NonFiniteLossError(Human3RError):
    """A training step's loss is NaN or infinite; the message names the terms that are."""
