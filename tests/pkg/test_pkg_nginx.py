"""The repository behind Debian's real nginx, configured with the very server block the
operator guide prints ("Serving the repository with nginx"), TLS aside: nodes install
through it, a publication's flip of ``current`` is seen at once, and nothing but
``pool/``, ``current`` and ``generations/`` is served.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from pkgkit import GROUP, Repo, make_repo

from conftest import Shipyard, make_env
from helpers import free_port, wait_until

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"


def guide_server_block() -> str:
    """The ``server { ... }`` block of the guide's nginx section, as printed there."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## Serving the repository with nginx", 1)[1]
    match = re.search(r"```nginx\n(.*?)```", section, re.S)
    assert match is not None, "the guide's nginx section lost its config block"
    return match.group(1)


def local_config(block: str, root: Path, port: int, run: Path) -> str:
    """The guide's block on a loopback port without TLS, in a throwaway nginx.conf."""
    listen = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{port};", block)
    assert listen != block, "the guide's block no longer listens on 443"
    served = re.sub(r"root [^;]+;", f"root {root};", listen)
    return (
        "daemon off;\nuser root;\nworker_processes 1;\n"
        f"pid {run}/nginx.pid;\nerror_log {run}/error.log;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"  access_log {run}/access.log;\n"
        f"  client_body_temp_path {run}/body;\n  proxy_temp_path {run}/proxy;\n"
        f"  fastcgi_temp_path {run}/fastcgi;\n  uwsgi_temp_path {run}/uwsgi;\n"
        f"  scgi_temp_path {run}/scgi;\n"
        "  types { application/json json; application/gzip gz; }\n"
        f"{served}\n}}\n"
    )


@pytest.fixture
def nginx_repo(tmp_path: Path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    base = tmp_path / "publisher"
    base.mkdir()
    home = base / "home"
    home.mkdir()
    repo = make_repo(Shipyard(home, make_env(home)), base)
    repo.add("lib", "1.0", files={"lib/blob.bin": bytes(range(256)) * 64})
    repo.add("app", "1.0", requires=[f"{GROUP}:lib:>=1.0"])
    repo.publish()
    run = tmp_path / "nginx"
    run.mkdir()
    port = free_port()
    conf = run / "nginx.conf"
    conf.write_text(local_config(guide_server_block(), repo.root, port, run), encoding="utf-8")
    check = subprocess.run([nginx, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    server = subprocess.Popen([nginx, "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            return httpx.get(f"{url}/current/release.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=20, message="nginx to serve the repository")
        yield repo, url
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_nodes_install_through_nginx_and_see_each_publication(
        shipyard: Shipyard, nginx_repo: tuple[Repo, str]) -> None:
    repo, url = nginx_repo
    env = repo.node_env(url=url)
    result = shipyard.run("pkg", "install", f"{GROUP}:app", env=env)
    assert f"installed {GROUP}:lib:1.0" in result.stdout
    assert f"installed {GROUP}:app:1.0" in result.stdout
    info = json.loads(shipyard.run("pkg", "info", f"{GROUP}:lib:1.0", "--json").stdout)
    assert info["source"] == f"{url}/pool/org/test/lib/1.0/lib-1.0.tar.gz"

    # The guide's caching: current revalidated, pool and generations immutable.
    current = httpx.get(f"{url}/current/release.json")
    assert current.headers["cache-control"] == "no-cache"
    serial = json.loads(current.text)["serial"]
    pool = httpx.get(info["source"])
    assert pool.status_code == 200 and "immutable" in pool.headers["cache-control"]

    # A publication flips current: the next install through nginx sees it (no stale
    # symlink: nginx resolves it per request, as the guide's "no-cache" assumes).
    repo.add("lib", "1.1")
    repo.publish()
    flipped = json.loads(httpx.get(f"{url}/current/release.json").text)
    assert flipped["serial"] > serial
    result = shipyard.run("pkg", "install", f"{GROUP}:lib", env=env)
    assert f"installed {GROUP}:lib:1.1" in result.stdout
    assert shipyard.run("pkg", "verify").returncode == 0


def test_nginx_serves_nothing_private(nginx_repo: tuple[Repo, str]) -> None:
    repo, url = nginx_repo
    private = sorted(p.name for p in repo.root.iterdir()
                     if p.name not in {"pool", "current", "generations"})
    assert private, "the repository has private files next to the published ones"
    for name in private:
        suffix = "/" if (repo.root / name).is_dir() else ""
        answer = httpx.get(f"{url}/{name}{suffix}")
        assert answer.status_code == 404, (name, answer.status_code)
        for child in (repo.root / name).glob("*") if suffix else ():
            assert httpx.get(f"{url}/{name}/{child.name}").status_code == 404, child
    assert httpx.get(f"{url}/").status_code == 404
