"""The exceptions that `swarm_metrics` raises.

Every error of the store is a :class:`Error`; the subclasses name the cases
a caller can act on. The message is the store's own, the same text the
Rust crate and the command line give.
"""


class Error(Exception):
    """Anything that went wrong opening, writing or querying a store."""


class InvalidInput(Error, ValueError):
    """An argument or record field was refused before anything was written.

    Also a :class:`ValueError`, so that code written for the reference
    module's checks keeps catching it.
    """


class InvalidRule(InvalidInput):
    """An alert rule was refused; no rule of its file is kept."""


class Closed(Error):
    """The store was closed: open a new one."""


class DatabaseFull(Error):
    """The file reached its size limit or the disk is full; nothing of the
    failed call was written."""


class ForeignDatabase(Error):
    """The file is not a swarm-metrics store (another program's SQLite
    file, or not SQLite at all); it was left untouched."""


class SchemaMismatch(Error):
    """The file was written by a newer version of swarm-metrics, or by one
    too old to upgrade in place; it was left untouched."""


class ReadOnly(Error):
    """A write to a store opened read-only."""


class Unsupported(Error):
    """The call is not available on this kind of store (a file-only call on
    a PostgreSQL store, say)."""


__all__ = [
    "Error",
    "InvalidInput",
    "InvalidRule",
    "Closed",
    "DatabaseFull",
    "ForeignDatabase",
    "SchemaMismatch",
    "ReadOnly",
    "Unsupported",
]
