"""SQLite's full text moves from FTS5 to a Tantivy index beside the database; papers get a text_seq.

The index (search/fulltext.py) is derived from the table: it indexes every paper whose ``text_seq``
is above the largest it holds, so existing papers start at their pk and are indexed at the first
search or ingest. PostgreSQL keeps its tsvector; the column is there too, so the schema is one.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from dailypapers.store.backend import is_sqlite

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_FTS5 = ("papers_fts_delete", "papers_fts_update")


def upgrade() -> None:
    if is_sqlite(op.get_bind()):
        for trigger in _FTS5:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS papers_fts")
    op.add_column("papers", sa.Column("text_seq", sa.BigInteger, nullable=False, server_default="0"))
    op.execute("UPDATE papers SET text_seq = pk")
    op.create_index("ix_papers_text_seq", "papers", ["text_seq"])


def downgrade() -> None:
    op.drop_index("ix_papers_text_seq", "papers")
    op.drop_column("papers", "text_seq")
