"""Errors raised by the storage package: each names the cause and the next step."""


class StorageError(Exception):
    """Base class for every error the storage package raises on purpose."""


class RootError(StorageError):
    """The dataset root cannot be used: an unsupported URL scheme, or a path that is not a folder."""


class DatasetNotFoundError(StorageError):
    """No dataset at the given root."""


class SchemaMismatchError(StorageError):
    """The dataset (or a table handed to the writer) does not match this code's schema."""


class QueryError(StorageError):
    """User SQL failed: bad syntax, unknown column, or a statement that is not a read."""


class MediaError(StorageError):
    """A source video cannot be used: the message says why; `transient` says whether trying again later may
    succeed (network, throttling, timeouts) or the answer stands until the file changes (see `storage.media`)."""

    def __init__(self, message: str, *, transient: bool = False, cause: str | None = None):
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.cause = cause or ("transient" if transient else None)  # what made it transient (SLOW_DOWN, HTTP 503)
