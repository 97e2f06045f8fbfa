"""Contract: items loses `title`; only version 2 of the reference app (`name`) runs after it.

Revision ID: 0003_drop_title
Revises: 0002_items_name

It removes the shape 0002_items_name kept alive for version 1: bluegreen refuses it while an arm
that needs an earlier revision is deployed, or while a rollback to one is still possible.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_drop_title"
down_revision = "0002_items_name"
branch_labels = None
depends_on = None

phase = "contract"
contracts = "0002_items_name"


def upgrade() -> None:
    op.execute("DROP TRIGGER items_title_name ON items")
    op.execute("DROP FUNCTION items_title_name()")
    # The backfill and the trigger left none; a row that escaped both would fail SET NOT NULL.
    op.execute("UPDATE items SET name = title WHERE name IS NULL")
    op.alter_column("items", "name", existing_type=sa.Text, nullable=False)
    op.drop_column("items", "title")


def downgrade() -> None:
    raise NotImplementedError(
        "0003_drop_title is not undone: bring title back with a new expand revision"
    )
