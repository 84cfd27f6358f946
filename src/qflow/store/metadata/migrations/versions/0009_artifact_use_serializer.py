"""step_io and run_artifacts: each use of an artifact records its serializer.

Artifacts are keyed by their bytes, so two values with the same bytes and different
serializers (a custom serializer's b"1" and the JSON int 1) share one ``artifacts`` row; the
serializer, its version, the type name and the pickled flag now travel with each use. NULL in
rows written before: the ``artifacts`` row's values apply.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("step_io", "run_artifacts")
_COLUMNS = (
    ("serializer", sa.String()),
    ("serializer_version", sa.String()),
    ("type_name", sa.String()),
    ("pickled", sa.Boolean()),
)


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for name, kind in _COLUMNS:
                batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for name, _ in reversed(_COLUMNS):
                batch.drop_column(name)
