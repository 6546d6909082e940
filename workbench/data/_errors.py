"""Errors raised by the data package; each message names the file or field and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset, file or argument that cannot be used as it is."""


class UnsafePickleError(DataError):
    """A pkl file that would build something other than numpy arrays and plain containers."""


class CorruptFileError(DataError):
    """A file that is truncated, malformed or does not match its recorded size or checksum."""
