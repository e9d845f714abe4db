"""Jobs: the harvest checkpoints in the database, and procrastinate's job queue on PostgreSQL.

procrastinate's own schema (tables procrastinate_*, its functions and triggers) comes from the
installed procrastinate's SchemaManager; a later procrastinate version that changes it brings
its migration files (see docs/operating.md, "Jobs"). SQLite runs the jobs in-process: no queue.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

PROCRASTINATE_TABLES = ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                        "procrastinate_workers")


def upgrade() -> None:
    op.create_table(
        "harvest_checkpoints",
        sa.Column("set_spec", sa.String(200), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # Through the driver's cursor with no parameters: the SQL holds literal % signs.
        op.get_bind().connection.cursor().execute(SchemaManager.get_schema())


def downgrade() -> None:
    op.drop_table("harvest_checkpoints")
    if op.get_bind().dialect.name == "postgresql":
        for table in PROCRASTINATE_TABLES:
            op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        op.execute("DROP TYPE IF EXISTS procrastinate_job_status, procrastinate_job_event_type CASCADE")
