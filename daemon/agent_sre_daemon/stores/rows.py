"""Many rows into SQLite in few statements.

Python's ``sqlite3`` gives the GIL up around every step of a statement, and ``executemany``
steps once a row. A thread writing while the event loop is busy then waits up to the
interpreter's switch interval (5 ms) to have the GIL back, once a row: the trace buffer's
writer fell minutes behind a loaded proxy that way. A statement of many rows steps once.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_PARAMETERS = 999
"""The fewest host parameters a statement may hold in any SQLite (3.32 raised it to
32,766)."""
MOST_PARAMETERS = 8192
"""Parameters a statement takes where the library allows that many (Python 3.11 can ask):
a flush's rows go in one statement, whose text stays short (tens of KiB)."""


def parameters_allowed(db: sqlite3.Connection) -> int:
    """Host parameters one statement may take on ``db`` (at most :data:`MOST_PARAMETERS`)."""
    getlimit = getattr(db, "getlimit", None)  # both Python 3.11+
    which = getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", None)
    if getlimit is None or which is None:
        return MAX_PARAMETERS
    allowed = int(getlimit(which))
    return max(1, min(MOST_PARAMETERS, allowed))


def insert_rows(
    db: sqlite3.Connection, head: str, row: str, tail: str, rows: Sequence[Sequence[Any]]
) -> None:
    """Runs ``{head} VALUES {row}, {row}, ... {tail}`` over ``rows``, as many rows a statement
    as the parameters allow (:func:`parameters_allowed`; a whole statement's text repeats, so
    SQLite's statement cache keeps it).

    Args:
        db: the connection (inside the caller's transaction).
        head: the statement up to ``VALUES``.
        row: one row's values, with ``?`` for each of its parameters.
        tail: what follows the values (an ``ON CONFLICT`` clause, or nothing).
        rows: the parameters, a sequence per row.
    """
    width = row.count("?")
    per_statement = max(1, parameters_allowed(db) // max(1, width))
    for start in range(0, len(rows), per_statement):
        some = rows[start : start + per_statement]
        values = ", ".join([row] * len(some))
        db.execute(f"{head} VALUES {values}{tail}", [v for r in some for v in r])
