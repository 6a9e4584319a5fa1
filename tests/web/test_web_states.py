"""Every page with builds in every state and every publish state, in-process (FastAPI's
TestClient over the coordinator's real app and an SQLite file): no page may answer 5xx, and
a build the repository refused shows as failed to publish wherever builds are listed."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import Shipyard
from shipyard.config import load_settings
from shipyard.db.farm_models import BUILD_STATES, FarmBuild, FarmLogChunk, FarmPackage
from shipyard.farm.db import FarmDB
from shipyard.server import create_app
from shipyard.timeutil import utcnow

PUBLISH_STATES = (None, "pending", "uploaded", "published", "error")
FILTER_STATES = (*BUILD_STATES, "publish-failed")
REFUSED = "the repository holds org.example:pkg-succeeded-error 1.0 with other content"


@pytest.fixture
def client(shipyard: Shipyard, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, int]]]:
    repo = tmp_path / "repo"
    shipyard.run("repo", "init", str(repo))
    db_url = f"sqlite:///{tmp_path / 'farm.sqlite'}"
    settings = load_settings(home=shipyard.home, env={})
    # Publishing off (no signing key needed): the pages are the subject, not the publisher.
    app = create_app(settings, db_url, repo, publish=False)
    ids: dict[str, int] = {}
    db = FarmDB(db_url)
    now = utcnow()
    with db.write() as session:
        for state, publish in itertools.product(BUILD_STATES, PUBLISH_STATES):
            name = f"org.example:pkg-{state}-{publish or 'none'}"
            package = FarmPackage(name=name, repo_url="/src.git", subdir="p",
                                  maintainer="Pat <pat@example.org>", head_commit="ab" * 20,
                                  head_version="1.0", created_at=now, updated_at=now)
            session.add(package)
            session.flush()
            final = state not in ("queued", "running")
            build = FarmBuild(
                package_id=package.id, package=name, version="1.0", commit="ab" * 20,
                repo_url="/src.git", subdir="p", state=state, attempt=1,
                worker=None if state == "queued" else "w1", requested_at=now,
                claimed_at=None if state == "queued" else now,
                finished_at=now if final else None, reason="" if state == "succeeded"
                else f"{state} because of <b>markup</b>",
                artifact_name="pkg-1.0.tar.gz" if state == "succeeded" else None,
                artifact_size=10 if state == "succeeded" else None,
                artifact_sha256="0" * 64 if state == "succeeded" else None,
                publish_state=publish,
                publish_error=REFUSED if publish == "error" else "", log_bytes=6)
            session.add(build)
            session.flush()
            session.add(FarmLogChunk(build_id=build.id, attempt=1, offset=0, size=6,
                                     data="line\n\n"))
            ids[f"{state}/{publish}"] = build.id
    db.dispose()
    with TestClient(app) as _unused:
        pass  # run the lifespan once so start-up and shutdown are covered too
    yield TestClient(app, raise_server_exceptions=False), ids


def test_every_page_answers_with_builds_in_every_state(
        client: tuple[TestClient, dict[str, int]]) -> None:
    http, ids = client
    paths = ["/", "/builds", "/packages", "/workers", "/stats", "/repository",
             *(f"/builds?state={state}" for state in FILTER_STATES)]
    for key, build_id in ids.items():
        paths += [f"/builds/{build_id}", f"/builds/{build_id}/log.txt",
                  f"/api/builds/{build_id}",
                  f"/packages/org.example:pkg-{key.replace('/', '-').replace('None', 'none')}"]
    for path in paths:
        answer = http.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"
        assert "<b>markup</b>" not in answer.text or path.endswith(".txt") \
            or path.startswith("/api/"), f"{path} renders data as markup"


def test_a_refused_package_is_failed_to_publish_everywhere(
        client: tuple[TestClient, dict[str, int]]) -> None:
    http, ids = client
    refused = ids["succeeded/error"]
    published = ids["succeeded/published"]

    view = http.get(f"/api/builds/{refused}").json()
    assert view["state"] == "succeeded" and view["status"] == "publish-failed"
    assert http.get(f"/api/builds/{published}").json()["status"] == "succeeded"

    page = http.get(f"/builds/{refused}").text
    badge = re.search(r'id="build-state">([^<]*)<', page)
    assert badge and badge.group(1) == "failed to publish"
    assert REFUSED in page

    repository = http.get("/repository").text
    assert f"/builds/{refused}" in repository and REFUSED in repository

    dashboard = http.get("/").text
    failures = dashboard.split('id="failures-h"', 1)[1].split("</section>", 1)[0]
    assert f"/builds/{refused}\"" in failures
    assert f"/builds/{published}\"" not in failures

    listed = http.get("/api/builds", params={"state": "publish-failed"}).json()
    assert [b["id"] for b in listed] == [refused]
    succeeded = {b["id"] for b in http.get("/api/builds", params={"state": "succeeded"}).json()}
    assert refused not in succeeded and published in succeeded
    filtered = http.get("/builds?state=publish-failed").text
    assert f"/builds/{refused}\"" in filtered and f"/builds/{published}\"" not in filtered
    assert 'value="publish-failed"' in http.get("/builds").text


def test_a_failed_build_says_it_is_not_retried(
        client: tuple[TestClient, dict[str, int]]) -> None:
    http, ids = client
    page = http.get(f"/builds/{ids['failed/None']}").text
    attempt = re.search(r'<dd id="attempt">([^<]*)</dd>', page)
    assert attempt is not None
    assert "not retried: a failed build waits for a new commit or a forced rebuild" \
        in attempt.group(1)
    assert "of at most" not in attempt.group(1)
