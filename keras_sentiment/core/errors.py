"""Errors a user can cause and fix; the CLI prints these without a traceback."""


class KerasSentimentError(Exception):
    """Base class for mistakes in input, data or configuration."""


class DataNotFoundError(KerasSentimentError):
    """A dataset is neither on disk nor obtainable (e.g. offline with nothing local)."""


class MalformedDataError(KerasSentimentError):
    """A data file exists but cannot be parsed; the message names `file:line`."""

    def __init__(self, path, line, reason):
        self.path, self.line, self.reason = str(path), line, reason
        super().__init__(f"{path}:{line}: {reason}")
