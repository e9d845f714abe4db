"""An author's papers as an index lookup (/authors/{name}, followed authors). PostgreSQL: a GIN index
on papers.authors (jsonb_path_ops), which ``authors @> '[{"name": ...}]'`` reads. SQLite: a
paper_authors table of (name, paper) kept by triggers on papers (see store/backend.py).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from dailypapers.store.backend import create_author_index, drop_author_index

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_author_index(op.get_bind())


def downgrade() -> None:
    drop_author_index(op.get_bind())
