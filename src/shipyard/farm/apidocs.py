"""``/docs``: the Swagger UI of the coordinator's API, served by the coordinator itself.

FastAPI's own ``/docs`` loads Swagger UI's script and style from a CDN, so a coordinator
on a network without the internet (most build farms) showed a blank page. Here the page
references only files below ``/docs/assets/``, which come from the ``fastapi-offline``
package (Swagger UI's release files, kept current for FastAPI); nothing is fetched from
anywhere else, and Swagger UI's online spec validator is switched off.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
# The files the page uses, as the package ships them.
SCRIPT, STYLE, ICON = "swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"


def assets_dir() -> Path:
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets; the app must be created with ``docs_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="api-docs-assets")
    title = f"{app.title} - API"

    @app.get(DOCS_URL, include_in_schema=False)
    async def api_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=title,
            swagger_js_url=f"{root}{ASSETS_URL}/{SCRIPT}",
            swagger_css_url=f"{root}{ASSETS_URL}/{STYLE}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{ICON}",
            # None: no badge that sends the schema to an online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )
