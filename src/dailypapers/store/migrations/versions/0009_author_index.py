"""PostgreSQL: a GIN index on papers.authors (jsonb_path_ops), for an author's papers (/authors/{name})
and followed authors: ``authors @> '[{"name": ...}]'`` reads the index instead of every paper.
SQLite keeps no such index (store/backend.has_author tests the JSON text first).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX IF NOT EXISTS ix_papers_authors ON papers USING gin (authors jsonb_path_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_papers_authors")
