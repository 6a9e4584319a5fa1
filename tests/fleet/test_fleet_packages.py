"""``fleet assign``'s package check against the coordinator's own ``--repo``: read with
the public half of the key it signs with, so no ``repo.key`` is needed on the coordinator,
and a repository signed by another key is still refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleetkit import EXAMPLES

from shipyard.config import load_settings
from shipyard.coords import PackageCoord
from shipyard.fleet.errors import NotFound
from shipyard.fleet.packages import check_in_repository
from shipyard.pkg.pack import pack_directory
from shipyard.repo.keys import keygen
from shipyard.repo.layout import init_repository
from shipyard.repo.publish import publish
from shipyard.repo.upload import upload


def _repository(base: Path) -> Path:
    repo = base / "repository"
    key = keygen(base / "keys" / "repository.key")
    init_repository(repo, signing_key=key.private_path)
    upload(None, repo, pack_directory(EXAMPLES / "svc-script", base / "out"))
    publish(None, repo)
    return repo


def test_own_repository_is_verified_with_its_signing_key(tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    settings = load_settings(home=tmp_path / "home", env={})
    assert not settings.repo.key and not settings.repo.url
    check_in_repository(settings, repo, PackageCoord.parse("org.example:svc-script"))
    with pytest.raises(NotFound, match="svc-nothing"):
        check_in_repository(settings, repo,
                            PackageCoord.parse("org.example:svc-nothing"))


def test_a_configured_key_that_did_not_sign_it_is_refused(tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    other = keygen(tmp_path / "other" / "other.key")
    settings = load_settings(home=tmp_path / "home",
                             env={"SHIPYARD_REPO_KEY": str(other.public_path)})
    with pytest.raises(NotFound):
        check_in_repository(settings, repo,
                            PackageCoord.parse("org.example:svc-script"))
