"""The publisher run's rules: one coordinate one content, the security fast track, hooks
that can stop a publication, pruning."""

from __future__ import annotations

import json
import os
from pathlib import Path

from repo_helpers import coords, make_repo

from conftest import Shipyard

LOG_HOOK = """#!/bin/sh
echo "{name} $1 $SHIPYARD_SERIAL" >> "{log}"
"""


def test_known_coordinate_with_other_bytes_is_refused(shipyard: Shipyard, tmp_path: Path,
                                                      db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    first = repo.archive("hello", "1.0", payload="one\n")
    second = repo.archive("hello", "1.0", payload="two\n")
    assert first.read_bytes() != second.read_bytes()
    repo.upload(first)
    repo.upload(second)  # both queued: the publisher must decide
    result = repo.publish("--json")
    data = json.loads(result.stdout)
    assert [a["coordinate"] for a in data["accepted"]] == ["org.example:hello:1.0"]
    assert len(data["rejected"]) == 1
    reason = data["rejected"][0]["reason"]
    assert "org.example:hello:1.0 is already in the repository with other content" in reason
    assert "warning: rejected" in result.stderr
    kept = Path(data["rejected"][0]["kept"])
    assert kept.parent == repo.root / "incoming" / "rejected"
    assert (kept / "hello-1.0.tar.gz").read_bytes() == second.read_bytes()
    assert (kept / "hello-1.0.tar.gz.reason").read_text().strip() == reason
    pool = repo.root / "pool/org/example/hello/1.0/hello-1.0.tar.gz"
    assert pool.read_bytes() == first.read_bytes()
    _release, indexes = repo.verify_current()
    assert [e.sha256 for e in indexes["stable"].packages] == [
        __import__("hashlib").sha256(first.read_bytes()).hexdigest()]

    # Once published, the uploader hears it at once.
    late = repo.run("upload", str(second), check=False)
    assert late.returncode == 1
    assert "already in the repository with other content" in late.stderr
    # The same bytes again are a no-op: nothing becomes dirty, nothing is published.
    repo.upload(first)
    serial = repo.current_serial()
    again = repo.publish_json()
    assert [u["coordinate"] for u in again["unchanged"]] == ["org.example:hello:1.0"]
    assert again["passes"] == [] and repo.current_serial() == serial
    # ... unless it asks for another channel: then it is listed there too.
    repo.upload(first, channel="security")
    moved = repo.publish_json()
    assert [p["channels"] for p in moved["passes"]] == [["security"]]
    _release, indexes = repo.verify_current()
    assert coords(indexes["security"]) == {"org.example:hello:1.0"}


def test_security_fast_track_runs_first(shipyard: Shipyard, tmp_path: Path,
                                        db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    repo.publish()  # the first publication: both channels exist from here on
    log = tmp_path / "hooks.log"
    for kind in ("pre", "post"):
        repo.hook(kind, "10-log", LOG_HOOK.format(name=kind, log=log))
    start = repo.current_serial()
    repo.upload(repo.archive("web", "2.0"), channel="stable")
    repo.upload(repo.archive("openssl", "1.1.1w"), channel="security")
    data = repo.publish_json()
    fast, normal = start + 1, start + 2
    assert [(p["priority"], p["serial"], p["channels"]) for p in data["passes"]] == [
        (0, fast, ["security"]), (1, normal, ["stable"])]
    assert log.read_text().splitlines() == [
        f"pre 0 {fast}", f"post 0 {fast}", f"pre 1 {normal}", f"post 1 {normal}"]
    # The fast-track generation carries the security fix but not yet the stable upload.
    from repo_helpers import verify_generation

    _r, indexes = verify_generation(repo.root, fast, repo.public_key)
    assert coords(indexes["security"]) == {"org.example:openssl:1.1.1w"}
    assert coords(indexes["stable"]) == set()
    _r, indexes = verify_generation(repo.root, normal, repo.public_key)
    assert coords(indexes["stable"]) == {"org.example:web:2.0"}
    assert coords(indexes["security"]) == {"org.example:openssl:1.1.1w"}
    # What the repository's face tells a reader (the demo) about the same files.
    from shipyard.repo.channels import first_listed, published_in
    from shipyard.repo.publish import publications

    assert first_listed(repo.root, "security", "org.example:openssl") == fast
    assert first_listed(repo.root, "stable", "org.example:web") == normal
    assert first_listed(repo.root, "stable", "org.example:openssl") is None
    assert published_in(repo.root, "security") == ["org.example:openssl:1.1.1w"]
    assert published_in(repo.root, "stable") == ["org.example:web:2.0"]
    passes = {p.serial: p for p in publications(repo.root)}
    assert passes[fast].priority == 0 and passes[normal].priority == 1

    # Only a stable upload: no fast-track pass at all.
    log.write_text("")
    repo.upload(repo.archive("web", "2.1"))
    data = repo.publish_json()
    assert [p["priority"] for p in data["passes"]] == [1]
    assert log.read_text().splitlines() == [f"pre 1 {normal + 1}", f"post 1 {normal + 1}"]


def test_first_fast_track_of_a_new_repository_holds_only_security(
        shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    """With no earlier generation to copy, the fast-track pass must still publish the other
    channels as they were (empty), not with their pending uploads."""
    from repo_helpers import verify_generation

    repo = make_repo(shipyard, tmp_path, db_url)
    repo.upload(repo.archive("web", "1.0"), channel="stable")
    repo.upload(repo.archive("openssl", "3.0.1"), channel="security")
    data = repo.publish_json()
    fast, normal = (p["serial"] for p in data["passes"])
    _r, indexes = verify_generation(repo.root, fast, repo.public_key)
    assert coords(indexes["security"]) == {"org.example:openssl:3.0.1"}
    assert coords(indexes["stable"]) == set()
    _r, indexes = verify_generation(repo.root, normal, repo.public_key)
    assert coords(indexes["stable"]) == {"org.example:web:1.0"}


def test_pre_publication_failure_leaves_current_alone(shipyard: Shipyard, tmp_path: Path,
                                                     db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    repo.upload(repo.archive("hello", "1.0"))
    repo.publish()
    before = repo.current_serial()
    env_dump = tmp_path / "env.txt"
    repo.hook("pre", "20-check", f"""#!/bin/sh
echo "$1 $SHIPYARD_REPO $SHIPYARD_GENERATION $SHIPYARD_SERIAL $(umask)" > "{env_dump}"
test -f "$SHIPYARD_GENERATION/release.json.sig" || exit 9
exit 3
""")
    posted = tmp_path / "post-ran"
    repo.hook("post", "10-mark", f"#!/bin/sh\ntouch {posted}\n")
    repo.upload(repo.archive("hello", "1.1"))
    result = repo.publish(check=False)
    hook = repo.root / "hooks" / "pre-publication.d" / "20-check"
    assert result.returncode == 1
    assert f"{hook} exited with return code 3" in result.stderr
    assert result.stderr.count("\n") == 1
    assert repo.current_serial() == before
    attempted = before + 1
    assert env_dump.read_text().split() == [
        "1", str(repo.root), str(repo.root / "generations" / str(attempted)), str(attempted),
        "0022"]
    assert not (repo.root / "generations" / str(attempted)).exists()
    assert not posted.exists()
    _release, indexes = repo.verify_current()
    assert coords(indexes["stable"]) == {"org.example:hello:1.0"}
    rows = json.loads(repo.run("activity", "--json").stdout)
    assert rows[0]["status"] == "failure"
    assert f"{hook} exited with return code 3" in rows[0]["message"]

    # Fix the hook: the next run publishes what is still pending, with a fresh serial.
    hook.write_text("#!/bin/sh\nexit 0\n")
    data = repo.publish_json()
    assert [p["serial"] for p in data["passes"]] == [attempted + 1]
    assert posted.exists()
    _release, indexes = repo.verify_current()
    assert coords(indexes["stable"]) == {"org.example:hello:1.0", "org.example:hello:1.1"}


def test_old_generations_are_pruned(shipyard: Shipyard, tmp_path: Path, db_url: str) -> None:
    repo = make_repo(shipyard, tmp_path, db_url)
    ini = repo.root / "repo.ini"
    ini.write_text(ini.read_text().replace("keep_generations = 10", "keep_generations = 2"))
    for n in range(4):
        repo.upload(repo.archive("hello", f"1.{n}"))
        repo.publish()
    current = repo.current_serial()
    kept = sorted(int(p.name) for p in (repo.root / "generations").iterdir())
    assert kept == [current - 2, current - 1, current]
    assert os.readlink(repo.root / "current") == f"generations/{current}"
    repo.verify_current()
