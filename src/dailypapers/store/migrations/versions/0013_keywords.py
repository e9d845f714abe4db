"""Papers' keywords (Hugging Face's ai_keywords): a signal of the recommendations (docs/recommend.md).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from dailypapers.store.schema import Json

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("papers", sa.Column("keywords", Json))


def downgrade() -> None:
    op.drop_column("papers", "keywords")
