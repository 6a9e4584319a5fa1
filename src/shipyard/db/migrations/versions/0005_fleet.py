"""fleet tables: revision, nodes, assignments, actual state, announcements, pairs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _node_fk() -> sa.Column:
    return sa.Column("node_id", sa.Integer, sa.ForeignKey("fleet_nodes.id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "fleet_revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute("INSERT INTO fleet_revision (id, revision) VALUES (1, 0)")
    op.create_table(
        "fleet_nodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("labels", sa.Text, nullable=False, server_default="{}"),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("agent_version", sa.String(100), nullable=False, server_default=""),
        sa.Column("signing_key", sa.String(64), nullable=False),
        sa.Column("sealing_key", sa.String(64), nullable=False),
        sa.Column("credential_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("join_token_id", sa.Integer, nullable=True),
        sa.Column("joined_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=True),
        sa.Column("lease_expires_at", TZ, nullable=False),
        sa.Column("lost_at", TZ, nullable=True),
        sa.Column("revision_applied", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("seen_from", sa.String(100), nullable=False, server_default=""),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_fleet_nodes_lease", "fleet_nodes", ["lost_at", "lease_expires_at"])
    op.create_table(
        "fleet_assignments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _node_fk(),
        sa.Column("service", sa.String(400), nullable=False),
        sa.Column("package", sa.String(400), nullable=False),
        sa.Column("params", sa.Text, nullable=False, server_default="[]"),
        sa.Column("boot", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("node_id", "service"),
    )
    op.create_table(
        "fleet_instances",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _node_fk(),
        sa.Column("service", sa.String(400), nullable=False),
        sa.Column("package", sa.String(400), nullable=False, server_default=""),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("since", TZ, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("reported_at", TZ, nullable=False),
        sa.UniqueConstraint("node_id", "service"),
    )
    op.create_table(
        "fleet_announcements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _node_fk(),
        sa.Column("instance", sa.String(400), nullable=False),
        sa.Column("interface", sa.String(100), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("sealed", sa.Text, nullable=False, server_default="{}"),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("node_id", "instance", "interface"),
    )
    op.create_index("ix_fleet_announcements_interface", "fleet_announcements", ["interface"])
    op.create_table(
        "fleet_pairs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _node_fk(),
        sa.Column("announcer", sa.String(400), nullable=False),
        sa.Column("acceptor", sa.String(400), nullable=False),
        sa.Column("interface", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("node_id", "announcer", "acceptor", "interface"),
    )
    op.create_table(
        "fleet_disabled_pairs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("announcer", sa.String(400), nullable=False),
        sa.Column("acceptor", sa.String(400), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False, server_default=""),
        sa.UniqueConstraint("announcer", "acceptor"),
    )


def downgrade() -> None:
    for table in ("fleet_disabled_pairs", "fleet_pairs", "fleet_announcements",
                  "fleet_instances", "fleet_assignments"):
        op.drop_table(table)
    op.drop_index("ix_fleet_nodes_lease", table_name="fleet_nodes")
    op.drop_table("fleet_nodes")
    op.drop_table("fleet_revision")
