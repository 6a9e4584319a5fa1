"""Bad input gets a clear error and loses nothing: malformed manifests at a pushed commit,
a build that floods its output, reports from another worker or a stale attempt, oversized
uploads, bad tokens and bad requests."""

from __future__ import annotations

import httpx
from farmkit import (  # noqa: F401
    Farm,
    Mailbox,
    Source,
    _farm,
    _make_farm,
    _smtp,
    _sqlite_farm,
    request_ids,
    wait_until,
)

from kit.manifest import manifest_text
from shipyard.farm.db import FarmDB
from shipyard.farm.tokens import create_token


def test_malformed_manifests_fail_with_the_error_in_log_and_mail(
        farm: Farm, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    farm.extra_env.update(SHIPYARD_SMTP_HOST="127.0.0.1", SHIPYARD_SMTP_PORT=str(port))
    coordinator = farm.start_coordinator()
    url = coordinator.url
    source = Source.create(farm, url)
    source.write("typo/shipyard.toml", manifest_text("org.example", "typo", 1,
                                                     maintainer="Ty Po <typo@example.org>"))
    source.write("junk/shipyard.toml", "[package\nthis is not toml\n")
    commit, output = source.push("two broken manifests")
    created = request_ids(output)
    assert len(created) == 2, output
    builds = {farm.build(url, b)["package"]: farm.build(url, b) for b in created}
    assert set(builds) == {"org.example:typo", "path:junk"}
    typo = builds["org.example:typo"]
    assert typo["state"] == "failed" and typo["commit"] == commit
    assert "package.version: expected a string, got an integer" in typo["reason"]
    assert "package.version: expected a string" in farm.log(url, typo["id"])
    assert "not valid TOML" in builds["path:junk"]["reason"]

    wait_until(lambda: len(box.messages) >= 2, 30, what="two failure mails")
    by_rcpt = {m["X-Envelope-To"]: m.get_payload(decode=True).decode() for m in box.messages}
    assert "package.version: expected a string" in by_rcpt["typo@example.org"]
    assert f"/builds/{typo['id']}" in by_rcpt["typo@example.org"]
    # Nobody is named in an unparsable manifest: the committer hears about it.
    assert "not valid TOML" in by_rcpt["dev@example.org"]

    # Pushing the same commit's manifests again does not report twice; a fix builds.
    farm.start_worker("w1", url)
    source.write("typo/shipyard.toml", manifest_text("org.example", "typo", "1",
                                                     maintainer="Ty Po <typo@example.org>"))
    source.write("junk/shipyard.toml", manifest_text("org.example", "junk", "1"))
    _commit, output = source.push("fixed")
    fixed = request_ids(output)
    assert len(fixed) == 2, output
    for build_id in fixed:
        assert farm.wait_state(url, build_id, "succeeded", "failed")["state"] == "succeeded"
    assert len(box.messages) == 2


def test_a_flood_of_output_is_capped_with_a_note(farm: Farm) -> None:
    farm.extra_env["SHIPYARD_FARM_LOG_MAX_BYTES"] = "20000"
    coordinator = farm.start_coordinator()
    url = coordinator.url
    farm.start_worker("w1", url)
    source = Source.create(farm, url)
    source.package("flood", "org.example", "flood", "1.0",
                   "yes 'flood flood flood' | head -c 3000000; echo; echo last words")
    _commit, output = source.push("flood")
    (build_id,) = request_ids(output)
    build = farm.wait_state(url, build_id, "succeeded", "failed", timeout=60)
    assert build["state"] == "succeeded"
    assert build["log_truncated"] is True
    assert build["log_bytes"] < 20000 + 1000
    log = farm.log(url, build_id)
    assert "log truncated at" in log and "farm.log_max_bytes" in log
    assert log.rstrip().endswith("[shipyard] build succeeded")
    assert "last words" not in log  # dropped after the cap, not stored


def test_reports_from_another_worker_or_a_stale_attempt_change_nothing(
        sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    farm.lease = 1.0
    farm.extra_env["SHIPYARD_FARM_MAX_UPLOAD_BYTES"] = "1000"
    coordinator = farm.start_coordinator()
    url = coordinator.url
    db = FarmDB(farm.db_url)
    other_token = create_token(db, "worker", "other")[0]
    db.dispose()
    a = farm.api(url, "worker")
    b = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {other_token}"})
    assert a.post("/api/workers/register", json={"name": "wa"}).status_code == 200
    assert b.post("/api/workers/register", json={"name": "wb"}).status_code == 200
    hook = farm.api(url, "hook")
    created = hook.post("/api/builds", json={
        "commit": "a" * 40, "repo_url": "/nowhere.git", "subdir": "p", "group": "org.example",
        "id": "pkg", "version": "1.0"})
    assert created.status_code == 201, created.text
    build_id = created.json()["build"]["id"]
    claimed = a.post("/api/workers/wa/claim", json={"wait": 5}).json()
    assert (claimed["build"]["id"], claimed["attempt"]) == (build_id, 1)

    # Worker b reports on a's build: refused, nothing changes.
    for path, body in (("finish", {"result": "success"}), ("heartbeat", {}),
                       ("log", {"pos": 0, "data": "forged output\n"})):
        answer = b.post(f"/api/builds/{build_id}/{path}",
                        json={"worker": "wb", "attempt": 1, **body})
        assert answer.status_code == 409, (path, answer.text)
        assert "attempt 1 of worker wb is not current" in answer.json()["detail"]
    # ... nor may it speak as worker a (another token).
    answer = b.post("/api/workers/wa/claim", json={"wait": 0})
    assert answer.status_code == 403
    assert answer.json()["detail"] == "worker 'wa' is registered with another token"
    answer = b.post(f"/api/builds/{build_id}/finish",
                    json={"worker": "wa", "attempt": 1, "result": "failure"})
    assert answer.status_code == 403
    # A future attempt number is as wrong as a past one.
    answer = a.post(f"/api/builds/{build_id}/heartbeat", json={"worker": "wa", "attempt": 2})
    assert answer.status_code == 409
    state = farm.build(url, build_id)
    assert (state["state"], state["worker"], state["attempt"]) == ("running", "wa", 1)
    assert "forged" not in farm.log(url, build_id)

    # a stops heartbeating: the lease runs out, b gets attempt 2, a's late result is stale.
    def reclaimed() -> dict | None:
        got = b.post("/api/workers/wb/claim", json={"wait": 1})
        return got.json() if got.status_code == 200 else None

    second = wait_until(reclaimed, 30, what="the build to be requeued and claimed by wb")
    assert (second["build"]["id"], second["attempt"]) == (build_id, 2)
    late = a.post(f"/api/builds/{build_id}/finish",
                  json={"worker": "wa", "attempt": 1, "result": "success"})
    assert late.status_code == 409
    assert "attempt 2 runs on worker wb" in late.json()["detail"]

    # Oversized uploads are refused (declared or streamed); nothing is kept.
    params = {"worker": "wb", "attempt": 2, "filename": "pkg-1.0.tar.gz"}
    big = b.put(f"/api/builds/{build_id}/artifact", params=params, content=b"x" * 5000)
    assert big.status_code == 413 and "farm.max_upload_bytes" in big.json()["detail"]
    streamed = b.put(f"/api/builds/{build_id}/artifact", params=params,
                     content=iter([b"x" * 600, b"x" * 600]))
    assert streamed.status_code == 413
    wrong = b.put(f"/api/builds/{build_id}/artifact",
                  params={**params, "filename": "other-1.0.tar.gz"}, content=b"x" * 10)
    assert wrong.status_code == 400 and "not an archive of org.example:pkg" in wrong.text
    early = b.post(f"/api/builds/{build_id}/finish",
                   json={"worker": "wb", "attempt": 2, "result": "success"})
    assert early.status_code == 400 and "before the package was uploaded" in early.text
    ok = b.put(f"/api/builds/{build_id}/artifact", params=params, content=b"y" * 500)
    assert ok.status_code == 200, ok.text
    assert ok.json()["size"] == 500
    done = b.post(f"/api/builds/{build_id}/finish",
                  json={"worker": "wb", "attempt": 2, "result": "success"})
    assert done.status_code == 200 and done.json()["build"]["state"] == "succeeded"
    # The same finish again (a lost answer) is answered the same; a's is still refused.
    assert b.post(f"/api/builds/{build_id}/finish", json={
        "worker": "wb", "attempt": 2, "result": "success"}).json()["repeated"] is True
    artifacts = farm.shipyard.home / "state" / "farm-artifacts"
    assert [p.name for p in artifacts.iterdir() if p.is_file()] == [
        f"{build_id}-a2-pkg-1.0.tar.gz"]
    assert list((artifacts / ".incoming").iterdir()) == []
    assert httpx.get(f"{url}/api/builds/{build_id}/artifact").content == b"y" * 500


def test_bad_tokens_and_bad_requests(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    coordinator = farm.start_coordinator()
    url = coordinator.url
    body = {"commit": "b" * 40, "repo_url": "/x.git", "group": "org.example", "id": "p",
            "version": "1"}
    assert httpx.post(f"{url}/api/builds", json=body).status_code == 401
    garbage = httpx.post(f"{url}/api/builds", json=body,
                         headers={"Authorization": "Bearer shy_not-a-token"})
    assert garbage.status_code == 401
    assert garbage.json()["detail"] == "invalid or revoked token"
    basic = httpx.post(f"{url}/api/builds", json=body, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    worker = farm.api(url, "worker")
    wrong_role = worker.post("/api/builds", json=body)
    assert wrong_role.status_code == 403
    assert wrong_role.json()["detail"] == "a worker token may not do this (needs: hook or admin)"
    assert farm.api(url, "hook").post("/api/builds/1/abort").status_code == 403
    assert farm.api(url, "hook").post("/api/workers/register",
                                      json={"name": "x"}).status_code == 403

    cli = farm.cli("farm", "build", "abort", "1", "--coordinator", url, "--token", "nope",
                   check=False)
    assert cli.returncode == 1
    assert cli.stderr.strip() == ("shipyard: error: coordinator refused POST /api/builds/1/abort:"
                                  " 401 invalid or revoked token")
    missing = farm.cli("farm", "build", "abort", "1", "--coordinator", url, check=False)
    assert missing.returncode == 2 and "needs a token" in missing.stderr

    # Revocation takes effect within seconds (tokens are cached briefly).
    hook = farm.api(url, "hook")
    assert hook.post("/api/builds", json=body).status_code == 201
    revoked = farm.cli("farm", "token", "revoke", "test-hook")
    assert "revoked token" in revoked.stdout
    wait_until(lambda: hook.post("/api/builds", json=body).status_code == 401, 10,
               what="the revoked token to be refused")

    admin = farm.api(url, "admin")
    for bad, status, words in (
            ({**body, "commit": "not-hex"}, 422, "commit"),
            ({**body, "group": "Org.Example"}, 400, "invalid group"),
            ({**body, "subdir": "../escape"}, 400, "relative path inside the repository"),
            ({k: v for k, v in body.items() if k != "version"}, 400, "group, id and version"),
    ):
        answer = admin.post("/api/builds", json=bad)
        assert answer.status_code == status, answer.text
        assert words in answer.text
    assert admin.post("/api/packages/org.example:unknown/builds",
                      json={}).status_code == 404
    assert httpx.get(f"{url}/api/builds/99999").status_code == 404
    assert httpx.get(f"{url}/api/builds", params={"state": "bogus"}).status_code == 400
