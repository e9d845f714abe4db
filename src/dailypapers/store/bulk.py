"""Bulk inserts without SQLAlchemy's per-row work, for the ingest's thousands of rows per batch.

``conn.execute(table.insert(), rows)`` builds a full parameter dict per row and looks up each
value's type processor again for every row: at ingest rates that cost more than SQLite's own
insert. Here the statement is compiled once per (table, keys, values) and each row becomes a tuple
in the driver's parameter order, converted by the same type processors SQLAlchemy would use.
Where the driver can ``COPY`` (psycopg on PostgreSQL), the rows are streamed with it instead: one
statement per batch rather than one per row (bench/ingest.py: PostgreSQL's own floor is COPY).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


class _Plan:
    """A compiled INSERT and how to turn one row dict into the driver's parameters."""

    def __init__(self, table: Table, keys: tuple[str, ...], values: tuple, serialized: tuple[str, ...],
                 dialect: Dialect):
        compiled = table.insert().values(dict(values)).compile(dialect=dialect, column_keys=list(keys))
        self.sql = compiled.string
        positional = compiled.positiontup is not None
        names = list(compiled.positiontup) if positional else list(compiled.binds)
        self.pick = _getter(keys)
        index = {key: i for i, key in enumerate(keys)}
        # Constants (a subquery's literals) go after the row's own values; ``order`` puts all in place.
        self.constants: tuple = ()
        positions = []
        self.processors: list[tuple[int, Callable]] = []
        for n, name in enumerate(names):
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if name in index:
                positions.append(index[name])
                if processor is not None and name not in serialized:
                    self.processors.append((n, processor))
            else:
                value = bind.effective_value  # a literal of a shared SQL value (the subquery's 0 and 1)
                positions.append(len(keys) + len(self.constants))
                self.constants += (processor(value) if processor else value,)
        self.order = _getter(positions)
        self.names = names
        self.positional = positional
        # COPY: the row's own columns, converted as above, then the shared values' columns.
        self.columns = [table.c[key].name for key in keys] + [table.c[key].name for key, _ in values]
        self.copy_sql = f"COPY {table.name} ({', '.join(self.columns)}) FROM STDIN"
        self.own_processors = [(index[name], processor) for name, processor in
                               ((n, compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect))
                                for n in names if n in index)
                               if processor is not None and name not in serialized]

    def params(self, rows: Sequence[dict]) -> list:
        pick, order, constants, processors = self.pick, self.order, self.constants, self.processors
        out = []
        for row in rows:
            values = list(order(pick(row) + constants))
            for n, process in processors:
                values[n] = process(values[n])
            out.append(tuple(values) if self.positional else dict(zip(self.names, values)))
        return out


def _getter(items: Sequence) -> Callable[[Any], tuple]:
    """itemgetter that always returns a tuple, even of one item."""
    if len(items) == 1:
        only = items[0]
        return lambda obj: (obj[only],)
    return itemgetter(*items)


@lru_cache(maxsize=64)
def _plan(table: Table, keys: tuple[str, ...], values: tuple, serialized: tuple[str, ...],
          dialect: Dialect) -> _Plan:
    return _Plan(table, keys, values, serialized, dialect)


def insert_many(conn: Connection, table: Table, rows: Sequence[dict], *, serialized: tuple[str, ...] = (),
                **values: Any) -> None:
    """Insert ``rows`` (dicts with the same keys) in one executemany, or one COPY where the driver has it.

    ``serialized`` names JSON columns whose values are JSON text already (both databases take the
    text); ``values`` are SQL expressions or constants shared by every row (``text_seq=subquery``:
    with COPY, evaluated once for the batch).
    """
    if not rows:
        return
    plan = _plan(table, tuple(rows[0]), tuple(values.items()), serialized, conn.dialect)
    driver = conn.connection.driver_connection
    if not hasattr(getattr(driver, "cursor_factory", None), "copy"):  # psycopg's cursors can COPY
        conn.exec_driver_sql(plan.sql, plan.params(rows))
        return
    cursor = driver.cursor()
    shared = [conn.execute(select(v)).scalar() if isinstance(v, ClauseElement) else v for v in values.values()]
    pick, processors = plan.pick, plan.own_processors
    try:
        with cursor, cursor.copy(plan.copy_sql) as copy:
            for row in rows:
                own = list(pick(row))
                for n, process in processors:
                    own[n] = process(own[n])
                copy.write_row(own + shared)
    except conn.dialect.dbapi.Error as err:  # as executemany's errors are: the ingest retries row by row
        raise DBAPIError(plan.copy_sql, None, err) from err
