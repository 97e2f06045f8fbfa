"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""

from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

# "expand": only adds (columns nullable or with a default, indexes CONCURRENTLY, new tables),
# so the code before it runs on after it; bluegreen lints it and refuses any finding.
# "contract": removes what older code needs; name the expand whose old shape it removes:
#     contracts = "<revision>"
# bluegreen refuses it while a deployed arm, or a rollback still possible, needs that shape.
phase = "expand"


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
