"""repository tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repo_package",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pkg_group", sa.String(255), nullable=False),
        sa.Column("ident", sa.String(128), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        sa.Column("maintainer", sa.Text, nullable=False, server_default=""),
        sa.Column("requires", sa.Text, nullable=False, server_default="[]"),
        sa.Column("service", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("added", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("pkg_group", "ident", "version", name="uq_repo_package_coord"),
    )
    op.create_table(
        "repo_channel",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("dirty_seq", sa.Integer, nullable=False, server_default="1"),
        sa.Column("published_seq", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "repo_channel_package",
        sa.Column("channel", sa.String(64),
                  sa.ForeignKey("repo_channel.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("package_id", sa.Integer,
                  sa.ForeignKey("repo_package.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_repo_channel_package_package_id", "repo_channel_package",
                    ["package_id"])
    op.create_table(
        "repo_publication",
        sa.Column("serial", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("channels", sa.Text, nullable=False, server_default="{}"),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("repo_publication")
    op.drop_index("ix_repo_channel_package_package_id", table_name="repo_channel_package")
    op.drop_table("repo_channel_package")
    op.drop_table("repo_channel")
    op.drop_table("repo_package")
