"""farm tables

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "farm_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("last_used_at", TZ, nullable=True),
    )
    op.create_table(
        "farm_packages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(300), nullable=False, unique=True),
        sa.Column("repo_url", sa.Text, nullable=False, server_default=""),
        sa.Column("subdir", sa.String(500), nullable=False, server_default=""),
        sa.Column("maintainer", sa.Text, nullable=False, server_default=""),
        sa.Column("head_commit", sa.String(64), nullable=False, server_default=""),
        sa.Column("head_version", sa.String(200), nullable=True),
        sa.Column("head_ref", sa.String(255), nullable=False, server_default=""),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("last_success_at", TZ, nullable=True),
        sa.Column("last_success_version", sa.String(200), nullable=True),
        sa.Column("last_build_id", sa.Integer, nullable=True),
    )
    op.create_table(
        "farm_workers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("token_id", sa.Integer, nullable=True),
        sa.Column("platforms", sa.Text, nullable=False, server_default=""),
        sa.Column("capacity", sa.Integer, nullable=False, server_default="1"),
        sa.Column("http_url", sa.Text, nullable=False, server_default=""),
        sa.Column("session", sa.String(64), nullable=False, server_default=""),
        sa.Column("registered_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "farm_builds",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("package_id", sa.Integer, sa.ForeignKey("farm_packages.id"), nullable=False),
        sa.Column("package", sa.String(300), nullable=False),
        sa.Column("version", sa.String(200), nullable=True),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False, server_default=""),
        sa.Column("repo_url", sa.Text, nullable=False),
        sa.Column("subdir", sa.String(500), nullable=False, server_default=""),
        sa.Column("platform", sa.String(100), nullable=True),
        sa.Column("maintainer", sa.Text, nullable=False, server_default=""),
        sa.Column("committer", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("dedup_key", sa.String(600), nullable=True, unique=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker", sa.String(100), nullable=True),
        sa.Column("lease_expires_at", TZ, nullable=True),
        sa.Column("abort_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("requested_by", sa.String(100), nullable=False, server_default=""),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("first_claimed_at", TZ, nullable=True),
        sa.Column("claimed_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("tail", sa.Text, nullable=False, server_default=""),
        sa.Column("log_bytes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("log_pos", sa.Integer, nullable=False, server_default="0"),
        sa.Column("log_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("artifact_name", sa.String(300), nullable=True),
        sa.Column("artifact_size", sa.BigInteger, nullable=True),
        sa.Column("artifact_sha256", sa.String(64), nullable=True),
        sa.Column("publish_state", sa.String(20), nullable=True),
        sa.Column("publish_error", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_farm_builds_state_id", "farm_builds", ["state", "id"])
    op.create_index("ix_farm_builds_package_id", "farm_builds", ["package_id", "id"])
    op.create_index("ix_farm_builds_lease", "farm_builds", ["state", "lease_expires_at"])
    op.create_index("ix_farm_builds_publish", "farm_builds", ["publish_state"])
    op.create_table(
        "farm_log_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("build_id", sa.Integer,
                  sa.ForeignKey("farm_builds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("offset", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_farm_log_chunks_build", "farm_log_chunks", ["build_id", "offset"])
    op.create_table(
        "farm_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("build_id", sa.Integer, nullable=True),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("message_id", sa.String(300), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("next_try_at", TZ, nullable=False),
        sa.Column("claimed_until", TZ, nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_farm_outbox_pending", "farm_outbox", ["sent_at", "next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_farm_outbox_pending", table_name="farm_outbox")
    op.drop_table("farm_outbox")
    op.drop_index("ix_farm_log_chunks_build", table_name="farm_log_chunks")
    op.drop_table("farm_log_chunks")
    for name in ("ix_farm_builds_publish", "ix_farm_builds_lease", "ix_farm_builds_package_id",
                 "ix_farm_builds_state_id"):
        op.drop_index(name, table_name="farm_builds")
    op.drop_table("farm_builds")
    op.drop_table("farm_workers")
    op.drop_table("farm_packages")
    op.drop_table("farm_tokens")
