"""The farm's wire protocol: every body a worker, a hook or the CLI sends to the coordinator
and every answer it gets, defined once (docs/reference/api.md documents them).

The coordinator declares them as FastAPI ``response_model``s and request bodies; the worker
parses its answers into them, so a build reaches the build step as ``job.build.repo_url``
and not as an index into a dict. Field names and meanings are the JSON's: do not rename
one without a new route. Times are ISO 8601 strings in UTC, as the coordinator writes them.
Unknown fields in an answer are ignored (an older worker keeps working against a newer
coordinator).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MAX_WAIT = 25.0
COMMIT_PATTERN = r"^[0-9a-f]{4,64}$"
RESULTS = ("success", "failure", "aborted", "released")
Result = Literal["success", "failure", "aborted", "released"]


# ---------------------------------------------------------------------------------------
# Bodies sent to the coordinator


class RegisterIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    platforms: list[str] = Field(default_factory=list, max_length=32)
    capacity: int = Field(default=1, ge=1, le=256)
    http_url: str = Field(default="", max_length=500)


class ClaimIn(BaseModel):
    platforms: list[str] | None = Field(default=None, max_length=32)
    wait: float = Field(default=MAX_WAIT, ge=0, le=MAX_WAIT)


class AttemptIn(BaseModel):
    """Names the attempt a report is about: applied only while it is the current one."""

    worker: str = Field(min_length=1, max_length=100)
    attempt: int = Field(ge=1)


class LogIn(AttemptIn):
    pos: int = Field(ge=0)
    data: str = Field(max_length=4 << 20)


class FinishIn(AttemptIn):
    result: Result
    reason: str = Field(default="", max_length=10_000)
    tail: str = Field(default="", max_length=64 << 10)
    log_pos: int | None = Field(default=None, ge=0)
    log: str = Field(default="", max_length=4 << 20)
    # Ask for the worker's next build in the same answer ("next": a claim's answer or null),
    # saving a busy worker one request per build; an idle one then long-polls as usual.
    claim: bool = False


class BuildRequestIn(BaseModel):
    commit: str = Field(pattern=COMMIT_PATTERN)
    repo_url: str = Field(min_length=1, max_length=2000)
    subdir: str = Field(default="", max_length=500)
    group: str | None = None
    id: str | None = None
    version: str | None = None
    ref: str = Field(default="", max_length=255)
    maintainer: str = Field(default="", max_length=500)
    committer: str = Field(default="", max_length=500)
    platform: str | None = Field(default=None, max_length=100)
    force: bool = False
    manifest_error: str | None = Field(default=None, max_length=10_000)


class PackageBuildIn(BaseModel):
    commit: str | None = Field(default=None, pattern=COMMIT_PATTERN)
    force: bool = False


# ---------------------------------------------------------------------------------------
# Views


class ArtifactView(BaseModel):
    name: str
    size: int | None
    sha256: str | None
    url: str


class BuildView(BaseModel):
    """A build as lists show it. ``state`` is the build's own; ``status`` is what a person
    sees (``publish-failed`` for a success the repository refused)."""

    id: int
    package: str
    version: str | None
    commit: str
    ref: str
    repo_url: str
    subdir: str
    platform: str | None
    maintainer: str
    state: str
    forced: bool
    attempt: int
    worker: str | None
    lease_expires_at: str | None
    abort_requested: bool
    requested_by: str
    requested_at: str | None
    first_claimed_at: str | None
    claimed_at: str | None
    finished_at: str | None
    reason: str
    log_bytes: int
    log_truncated: bool
    artifact: ArtifactView | None
    publish_state: str | None
    publish_error: str | None
    status: str
    url: str


class BuildDetail(BuildView):
    """One build: its view and the last lines of its output."""

    tail: str | None


class PackageView(BaseModel):
    name: str
    repo_url: str
    subdir: str
    maintainer: str
    head_commit: str
    head_version: str | None
    head_ref: str
    created_at: str | None
    updated_at: str | None
    last_success_at: str | None
    last_success_version: str | None
    last_build_id: int | None


class StalePackage(PackageView):
    days_since_success: float | None


WorkerStatus = Literal["offline", "idle", "busy", "paused"]


class WorkerView(BaseModel):
    name: str
    platforms: list[str]
    capacity: int
    http_url: str
    paused: bool
    registered_at: str | None
    last_seen_at: str | None
    status: WorkerStatus
    running: list[int]


class LogText(BaseModel):
    """Log text from byte ``offset``; ``next_offset`` is where the next read starts."""

    build: int
    state: str
    offset: int
    next_offset: int
    text: str
    truncated: bool
    size: int
    complete: bool


class PublishRound(BaseModel):
    """One round of the coordinator's publisher: what it uploaded, published and refused
    (build id -> why); ``busy`` when another publisher held the repository, and either the
    publication's message or the publisher's error. Unset fields are left out on the wire."""

    uploaded: list[int] = Field(default_factory=list)
    published: list[int] = Field(default_factory=list)
    errors: dict[int, str] = Field(default_factory=dict)
    busy: bool | None = None
    publication: str | None = None
    publish_error: str | None = None


class Health(BaseModel):
    ok: bool
    version: str
    instance: str
    database: str
    repository: str | None
    # The last publisher round as PublishRound sends it ({} before the first).
    last_publish: dict[str, object]


class WhoAmI(BaseModel):
    name: str
    role: str


class Stats(BaseModel):
    builds: dict[str, int]
    workers: int
    packages: int


# ---------------------------------------------------------------------------------------
# Answers


class Limits(BaseModel):
    """What the coordinator tells a worker to keep to."""

    lease_seconds: float
    heartbeat_seconds: float
    log_max_bytes: int
    max_upload_bytes: int


class Registered(Limits):
    worker: str
    session: str
    requeued: list[int]


class Job(Limits):
    """A claim's answer: the build to run, and the attempt every report must name."""

    build: BuildView
    attempt: int


class HeartbeatOut(BaseModel):
    abort: bool
    lease_expires_at: str


class LogOut(BaseModel):
    abort: bool
    pos: int
    truncated: bool


class StoredArtifact(BaseModel):
    name: str
    size: int
    sha256: str


class Finished(BaseModel):
    """``next`` is there only when the finish asked for a claim (and then may be null)."""

    build: BuildView
    repeated: bool
    next: Job | None = None


class Requested(BaseModel):
    build: BuildView
    created: bool
    note: str
