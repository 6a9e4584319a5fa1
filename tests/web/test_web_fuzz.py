"""Whatever a client sends, the coordinator never answers with a server error (5xx): its
HTTP API fuzzed from its own OpenAPI schema with schemathesis, its pages with Hypothesis.
Bounded (20 cases per API operation, a fixed seed). The worker pass is the slow one: its
claims are long polls that answer when the 3 s lease of a fuzzed claim runs out, so it
takes a few minutes and has a timeout of its own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from webkit import LIMITS, WebFarm

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[WebFarm]:
    farm = WebFarm.create(tmp_path).serve()
    farm.make_source()
    farm.request("hello")  # build 1 and a known package, so ids 1 and names resolve
    yield farm
    farm.close()


def _fuzz(farm: WebFarm, role: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCHEMATHESIS), "run", f"{farm.url}/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", "20", "--seed", "20261122",
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--no-shrink",
         "--header", f"Authorization: Bearer {farm.token(role)}",
         "--request-timeout", "30", "--suppress-health-check", "all",
         "--report-dir", str(farm.root / f"schemathesis-{role}"), *extra],
        capture_output=True, text=True, timeout=420, cwd=farm.root)


@pytest.mark.timeout(600)
def test_api_never_answers_5xx(coordinator: WebFarm) -> None:
    if not SCHEMATHESIS.exists():
        pytest.fail(f"{SCHEMATHESIS} is missing: pip install -e '.[test]'")
    # As an admin every operator route is reachable; as a worker, the worker protocol.
    for role, extra in (("admin", ()), ("worker", ("--include-tag", "worker"))):
        result = _fuzz(coordinator, role, *extra)
        output = result.stdout + result.stderr
        assert "Tested:" in output or "passed" in output, output[-3000:]
        found = [line.strip() for line in output.splitlines()
                 if line.startswith("___") or line.strip().startswith("curl ")]
        assert result.returncode == 0, (f"schemathesis as {role} found server errors:\n"
                                        + "\n".join(found) + "\n\n" + output[-4000:])
        # The coordinator survived all of it.
        assert coordinator.api_get("/api/health")["ok"] is True


# ---------------------------------------------------------------------------------------
# Pages never fail with a server error, whatever the query


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@pytest.fixture
def page_client(tmp_path: Path) -> Iterator[httpx.Client]:
    farm = WebFarm.create(tmp_path, LIMITS).serve()
    farm.add_user()
    try:
        with httpx.Client(base_url=farm.url, timeout=30) as client:
            yield client
    finally:
        farm.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/", "/builds", "/stats", "/workers/{}", "/packages/{}",
                             "/builds/{}", "/builds/{}/log.txt", "/repository", "/signin",
                             "/workers/{}?days={}"]),
       first=_text, second=_text,
       params=st.dictionaries(st.sampled_from(["state", "package", "worker", "before", "days",
                                               "from", "to", "next", "offset"]), _text,
                              max_size=4))
@example(path="/builds/{}", first="9" * 30, second="", params={})
@example(path="/builds/{}/log.txt", first="2147483648", second="", params={})
@example(path="/builds", first="", second="", params={"before": "9" * 30, "state": "x"})
@example(path="/stats", first="", second="", params={"from": "2026-02-30", "to": "1-1-1"})
@example(path="/workers/{}?days={}", first="w", second="9" * 30, params={})
def test_pages_never_answer_5xx(page_client: httpx.Client, path: str, first: str,
                                second: str, params: dict[str, str]) -> None:
    from urllib.parse import quote

    target = path.format(quote(first, safe=""), quote(second, safe=""))
    answer = page_client.get(target, params=params)
    assert answer.status_code < 500, (target, params, answer.text[:300])
