"""Embedding seqs only grow: a counter hands them out, where max(seq) + 1 could give the seq of a
deleted newest embedding again (the similar-papers cache and SQLite's vector file read only what
lies above the seq they last saw).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "counters",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO counters (name, value) "
               "SELECT 'paper_embeddings.seq', coalesce(max(seq), 0) FROM paper_embeddings")


def downgrade() -> None:
    op.drop_table("counters")
