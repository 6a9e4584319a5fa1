"""``/docs`` works without the internet: the page and every file it uses come from the
coordinator itself, and Swagger UI renders in a real browser (Debian's Chromium) that is
allowed no request to any other host."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from webkit import WebFarm, open_tab


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebFarm]:
    running = WebFarm.create(tmp_path_factory.mktemp("apidocs")).serve()
    yield running
    running.close()


def references(html: str) -> list[str]:
    """Every URL the page loads: scripts, style sheets, icons, and the schema."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    found += re.findall(r"""url:\s*["']([^"']+)["']""", html)
    return found


def test_docs_and_everything_it_references_come_from_the_coordinator(farm: WebFarm) -> None:
    with httpx.Client(base_url=farm.url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        urls = references(page.text)
        assert len(urls) >= 4, page.text  # style sheet, icon, script, schema
        origin = urlsplit(farm.url).netloc
        for url in urls:
            absolute = urljoin(farm.url + "/docs", url)
            assert urlsplit(absolute).netloc == origin, f"/docs loads {url} from elsewhere"
            response = client.get(absolute)
            assert response.status_code == 200, url
            assert len(response.content) > 100, url
        kinds = {url.rsplit(".", 1)[-1] for url in urls}
        assert {"css", "js", "json"} <= kinds, urls
        assert "http://" not in page.text and "https://" not in page.text


def test_swagger_ui_renders_with_no_outside_request(browser: Any,
                                                    farm: WebFarm, tmp_path: Path) -> None:
    tab = open_tab(browser, farm.url)
    origin = urlsplit(farm.url).netloc
    outside: list[str] = []
    served: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc == origin:
            served.append(urlsplit(url).path)
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    tab.context.route("**/*", guard)
    try:
        assert tab.goto("/docs").status == 200
        title = tab.page.locator(".swagger-ui .info .title")
        title.wait_for(state="visible")
        assert title.inner_text().startswith("Shipyard farm coordinator")
        operations = tab.page.locator(".swagger-ui .opblock")
        operations.first.wait_for(state="visible")
        assert operations.count() >= 10
        # Opening an operation works too (the UI is alive, not only painted).
        operations.first.locator(".opblock-summary").click()
        tab.page.locator(".swagger-ui .opblock.is-open").first.wait_for(state="visible")
        tab.shot("api-docs")
        assert outside == [], outside
        assert "/openapi.json" in served and "/docs/assets/swagger-ui-bundle.js" in served
        tab.check_console()
    finally:
        tab.context.close()
