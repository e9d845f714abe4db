"""Paper embeddings for semantic search (pgvector with an HNSW index on PostgreSQL).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

from dailypapers.store.backend import is_postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DIM = 384


def upgrade() -> None:
    postgres = is_postgresql(op.get_bind())
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "paper_embeddings",
        sa.Column("paper_pk", sa.Integer, sa.ForeignKey("papers.pk", ondelete="CASCADE"), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("vector", sa.LargeBinary().with_variant(Vector(DIM), "postgresql"), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_paper_embeddings_seq", "paper_embeddings", ["seq"])
    if postgres:
        # Cosine distance (<=>); defaults m=16, ef_construction=64. Queries set hnsw.ef_search.
        op.execute("CREATE INDEX ix_paper_embeddings_vector ON paper_embeddings "
                   "USING hnsw (vector vector_cosine_ops)")


def downgrade() -> None:
    op.drop_table("paper_embeddings")  # its indexes go with it; the extension stays (others may use it)
