"""The whole farm with real parts: push -> hook -> coordinator -> two workers -> repository
-> ``pkg install``; on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import httpx
from farmkit import Farm, Source, _farm, _make_farm, request_ids  # noqa: F401

from conftest import Shipyard

TOOL_BUILD = ("mkdir -p $SHIPYARD_DESTDIR/bin && "
              "sed s/@V@/$(sed -n 's/^version = \"\\(.*\\)\"/\\1/p' shipyard.toml)/ tool.in "
              "> $SHIPYARD_DESTDIR/bin/tool && chmod +x $SHIPYARD_DESTDIR/bin/tool && "
              "echo built tool")


def _repository(shipyard: Shipyard, tmp_path: Path) -> Path:
    shipyard.run("repo", "keygen")
    repo = tmp_path / "repo"
    shipyard.run("repo", "init", str(repo))
    return repo


def _install(shipyard: Shipyard, repo: Path, coordinate: str) -> str:
    key = shipyard.home / "state" / "keys" / "repository.key.pub"
    node = {"SHIPYARD_REPO_URL": repo.as_uri(), "SHIPYARD_REPO_KEY": str(key)}
    return shipyard.run("pkg", "install", coordinate, env=node).output


def test_push_builds_publishes_and_installs(farm: Farm, shipyard: Shipyard,
                                            tmp_path: Path) -> None:
    repo = _repository(shipyard, tmp_path)
    coordinator = farm.start_coordinator(repo=repo)
    url = coordinator.url
    farm.start_worker("w1", url)
    farm.start_worker("w2", url)
    source = Source.create(farm, url)

    source.package("libs/greeting", "org.example", "greeting", "1.0")
    source.write("libs/greeting/greeting.txt", "hello\n")
    source.package("tools/tool", "org.example", "tool", "1.0", TOOL_BUILD)
    source.write("tools/tool/tool.in", "#!/bin/sh\necho tool @V@\n")
    source.write("README", "not a package\n")
    commit, output = source.push("two packages")
    created = request_ids(output)
    assert len(created) == 2, output
    for build_id in created:
        build = farm.wait_state(url, build_id, "succeeded", "failed")
        assert build["state"] == "succeeded", farm.log(url, build_id)
        assert build["commit"] == commit and build["attempt"] == 1
    assert {farm.build(url, b)["worker"] for b in created} <= {"w1", "w2"}
    for build_id in created:
        farm.wait_state(url, build_id, "succeeded")
        from farmkit import wait_until

        wait_until(lambda b=build_id: farm.build(url, b)["publish_state"] == "published",
                   60, what=f"build {build_id} to be published")
    assert "built tool" in farm.log(url, created[1]) or "built tool" in farm.log(url, created[0])

    _install(shipyard, repo, "org.example:tool")
    tool = shipyard.home / "software" / "org" / "example" / "tool" / "1.0" / "bin" / "tool"
    assert tool.read_text() == "#!/bin/sh\necho tool 1.0\n"
    _install(shipyard, repo, "org.example:greeting")
    assert (shipyard.home / "software" / "org" / "example" / "greeting" / "1.0" /
            "greeting.txt").read_text() == "hello\n"

    # A change to one package builds that one only.
    source.package("tools/tool", "org.example", "tool", "1.1", TOOL_BUILD)
    commit2, output = source.push("tool 1.1")
    created2 = request_ids(output)
    assert len(created2) == 1, output
    build = farm.wait_state(url, created2[0], "succeeded", "failed")
    assert (build["package"], build["version"], build["commit"]) == (
        "org.example:tool", "1.1", commit2)

    from farmkit import wait_until

    wait_until(lambda: farm.build(url, created2[0])["publish_state"] == "published", 60,
               what="tool 1.1 to be published")
    _install(shipyard, repo, "org.example:tool")
    tool = shipyard.home / "software" / "org" / "example" / "tool" / "1.1" / "bin" / "tool"
    assert tool.read_text() == "#!/bin/sh\necho tool 1.1\n"

    # A change without a new version is not built again (the version is built already).
    source.write("tools/tool/NOTES", "just notes\n")
    _commit3, output = source.push("notes")
    assert request_ids(output) == [], output
    assert "no new build" in output and "already built" in output
    assert len(farm.builds(url)) == 3

    # The API lists the packages, the workers and nothing stale.
    packages = {p["name"]: p for p in httpx.get(f"{url}/api/packages").json()}
    assert packages["org.example:tool"]["last_success_version"] == "1.1"
    workers = {w["name"] for w in httpx.get(f"{url}/api/workers").json()}
    assert workers == {"w1", "w2"}
    assert farm.cli("farm", "stale", "--days", "1", "--json").stdout.strip() == "[]"
