"""PostgreSQL: the HNSW index built with ef_construction 128 (pgvector's default 64 left a graph
whose top 10 at 1M papers reached recall 0.88 at ef_search 100; 128 gives 0.95, and 1.0 at 200;
docs/benchmarks.md, "pgvector's HNSW recall"). A rebuild: minutes per million papers, faster with a
maintenance_work_mem that holds the graph (docs/operating.md).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

from dailypapers.store.backend import is_postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _rebuild(options: str) -> None:
    if is_postgresql(op.get_bind()):
        op.execute("DROP INDEX IF EXISTS ix_paper_embeddings_vector")
        op.execute(f"CREATE INDEX ix_paper_embeddings_vector ON paper_embeddings "
                   f"USING hnsw (vector vector_cosine_ops){options}")


def upgrade() -> None:
    _rebuild(" WITH (m = 16, ef_construction = 128)")


def downgrade() -> None:
    _rebuild("")
