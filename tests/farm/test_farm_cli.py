"""The farm's command line: tokens, stale packages, the hook installer, build and worker
commands, and one-line errors for bad input."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import httpx
from farmkit import Farm, Source, _make_farm, _sqlite_farm, git, request_ids  # noqa: F401


def test_tokens_are_shown_once_and_stored_hashed(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    created = farm.cli("farm", "token", "create", "--role", "admin", "--name", "ops")
    secret = created.stdout.strip()
    assert secret.startswith("shy_") and len(secret) > 40
    assert "shown only now" in created.stderr
    listed = farm.cli("farm", "token", "list", "--json")
    (token,) = json.loads(listed.stdout)
    assert (token["name"], token["role"], token["revoked_at"]) == ("ops", "admin", None)
    assert secret not in listed.stdout
    sqlite_file = farm.db_url.removeprefix("sqlite:///")
    with open(sqlite_file, "rb") as handle:
        assert secret.encode() not in handle.read()

    bad = farm.cli("farm", "token", "create", "--role", "root", check=False)
    assert bad.returncode == 2
    assert "unknown token role 'root' (expected one of: worker, hook, admin, node)" \
        in bad.stderr
    assert farm.cli("farm", "token", "revoke", str(token["id"])).returncode == 0
    assert json.loads(farm.cli("farm", "token", "list", "--json").stdout)[0]["revoked_at"]
    again = farm.cli("farm", "token", "revoke", "ops", check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == "shipyard: error: no live token with id or name 'ops'"


def test_stale_lists_packages_without_a_recent_success(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    empty = farm.cli("farm", "stale", "--days", "2")
    assert empty.returncode == 0 and "no package is older than 2 days" in empty.stdout
    coordinator = farm.start_coordinator()
    url = coordinator.url
    source = Source.create(farm, url)
    source.package("good", "org.example", "good", "1.0", "echo good")
    source.package("never", "org.example", "never", "1.0", "exit 1")
    _commit, output = source.push("two packages")
    good, never = request_ids(output)
    farm.start_worker("w1", url)
    assert farm.wait_state(url, good, "succeeded", "failed")["state"] == "succeeded"
    assert farm.wait_state(url, never, "succeeded", "failed")["state"] == "failed"

    stale = farm.cli("farm", "stale", "--days", "2", "--json", check=False)
    assert stale.returncode == 1
    listed = json.loads(stale.stdout)
    assert [p["name"] for p in listed] == ["org.example:never"]
    assert listed[0]["last_success_at"] is None
    # With 0 days even today's success is too old.
    zero = farm.cli("farm", "stale", "--days", "0", "--json", check=False)
    assert {p["name"] for p in json.loads(zero.stdout)} == {"org.example:good",
                                                           "org.example:never"}
    assert [p["name"] for p in httpx.get(f"{url}/api/stale", params={"days": 2}).json()] == [
        "org.example:never"]
    table = farm.cli("farm", "stale", "--days", "2", check=False)
    assert table.returncode == 1 and "org.example:never" in table.stdout
    assert "never" in table.stdout


def test_build_and_worker_commands(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    coordinator = farm.start_coordinator()
    url = coordinator.url
    source = Source.create(farm, url)
    source.package("p", "org.example", "p", "1.0", "echo hello from the build")
    commit, output = source.push("p")
    (build_id,) = request_ids(output)
    farm.start_worker("w1", url)
    assert farm.wait_state(url, build_id, "succeeded", "failed")["state"] == "succeeded"

    listed = json.loads(farm.cli("farm", "build", "list", "--coordinator", url,
                                 "--json").stdout)
    assert [(b["id"], b["commit"]) for b in listed] == [(build_id, commit)]
    shown = farm.cli("farm", "build", "show", str(build_id), "--coordinator", url)
    assert "succeeded" in shown.stdout and commit in shown.stdout
    log = farm.cli("farm", "build", "log", str(build_id), "-f", "--coordinator", url)
    assert "hello from the build" in log.stdout
    assert log.stdout.rstrip().endswith("[shipyard] build succeeded")

    admin = farm.token("admin")
    again = farm.cli("farm", "build", "request", "org.example:p", "--coordinator", url,
                     "--token", admin)
    assert "no new build" in again.stdout and "already built" in again.stdout
    forced = farm.cli("farm", "build", "request", "org.example:p", "--force",
                      "--coordinator", url, "--token", admin, "--json")
    assert json.loads(forced.stdout)["created"] is True

    paused = farm.cli("farm", "workers", "pause", "w1", "--coordinator", url,
                      "--token", admin)
    assert "worker w1:" in paused.stdout
    workers = json.loads(farm.cli("farm", "workers", "list", "--coordinator", url,
                                  "--json").stdout)
    assert workers[0]["paused"] is True
    farm.cli("farm", "workers", "resume", "w1", "--coordinator", url, "--token", admin)
    unknown = farm.cli("farm", "workers", "pause", "nobody", "--coordinator", url,
                       "--token", admin, check=False)
    assert unknown.returncode == 1 and "404 no worker 'nobody'" in unknown.stderr

    down = farm.cli("farm", "build", "list", "--coordinator", "http://127.0.0.1:9",
                    check=False)
    assert down.returncode == 1
    assert down.stderr.startswith("shipyard: error: coordinator http://127.0.0.1:9 unreachable")


def test_worker_http_port_redirects_to_its_page(sqlite_farm: Farm) -> None:
    from helpers import free_port

    farm = sqlite_farm
    coordinator = farm.start_coordinator()
    port = free_port()
    farm.start_worker("w7", coordinator.url, extra=("--http", str(port)))

    def redirect() -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/anything", timeout=2)
        except httpx.HTTPError:
            return None

    from farmkit import wait_until

    answer = wait_until(redirect, 30, what="the worker's redirect page")
    assert answer.status_code == 302
    assert answer.headers["location"] == f"{coordinator.url}/workers/w7"


def test_hook_install_and_bad_arguments(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    bare = farm.root / "r.git"
    git("init", "-q", "--bare", str(bare))
    foreign = bare / "hooks" / "post-receive"
    foreign.write_text("#!/bin/sh\necho mine\n")
    refused = farm.cli("farm", "hook", "install", str(bare), "--coordinator", "http://x",
                       "--token", "t", check=False)
    assert refused.returncode == 1 and "was not installed by shipyard" in refused.stderr
    farm.cli("farm", "hook", "install", str(bare), "--coordinator", "http://x",
             "--token", "t", "--force")
    script = foreign.read_text()
    assert " -m shipyard.cli.main farm hook run " in script
    assert script.split("exec '", 1)[1].split("'")[0] == str(Path(sys.executable).absolute())
    assert foreign.stat().st_mode & stat.S_IXUSR
    config = bare / "shipyard-hook.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    not_bare = farm.cli("farm", "hook", "install", str(farm.root), "--coordinator", "http://x",
                        "--token", "t", check=False)
    assert not_bare.returncode == 1 and "is not a bare git repository" in not_bare.stderr

    # The hook never fails a push, whatever it is fed.
    run = subprocess.run(["sh", str(foreign)], input="garbage\n", text=True,
                         capture_output=True, cwd=bare, env={**farm.env, "GIT_DIR": "."})
    assert run.returncode == 0

    bind = farm.cli("farm", "serve", "--bind", "nonsense", check=False)
    assert bind.returncode == 2 and "expected HOST:PORT" in bind.stderr
    db = farm.cli("farm", "token", "list", "--db", "mysql://x/y", check=False)
    assert db.returncode == 1 and "unsupported database URL" in db.stderr
    pg = farm.cli("farm", "token", "list", "--db", "postgresql://nobody@127.0.0.1:1/x",
                  check=False)
    assert pg.returncode == 1 and "cannot open farm database" in pg.stderr
    assert "Traceback" not in pg.stderr + db.stderr + bind.stderr
    no_token = farm.cli("farm", "worker", "--coordinator", "http://x", check=False)
    assert no_token.returncode == 2 and "needs a token" in no_token.stderr


def test_token_file_must_be_private(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    token = farm.root / "open.token"
    token.write_text("shy_whatever\n")
    token.chmod(0o644)
    for command in (["farm", "worker", "--coordinator", "http://127.0.0.1:9"],
                    ["farm", "hook", "install", str(farm.root), "--coordinator", "http://x"]):
        refused = farm.cli(*command, "--token-file", str(token), check=False)
        assert refused.returncode != 0
        assert refused.stderr.strip().splitlines() == [
            f"shipyard: error: --token-file {token} is readable by other users (mode 0644): "
            f"chmod 600 {token}"]
    token.chmod(0o600)
    both = farm.cli("farm", "worker", "--token-file", str(token), "--token", "x", check=False)
    assert both.returncode != 0 and "not both" in both.stderr
    # --token still works, but says that ps shows it.
    shown = farm.cli("farm", "hook", "install", str(farm.root), "--coordinator", "http://x",
                     "--token", "t", check=False)
    assert "warning: --token is visible to every local user" in shown.stderr
