"""What every page request goes through: the shared page state, who is asking, rendering
with the security headers, error pages, and the checks each form passes (a urlencoded body
of bounded size, a same-site origin, a signed-in user, a valid CSRF token) before its
action runs."""

from __future__ import annotations

import base64
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from shipyard import __version__
from shipyard.errors import ShipyardError
from shipyard.farm.config import FarmConfig
from shipyard.farm.coordinator import Coordinator
from shipyard.farm.errors import FarmError
from shipyard.web import format as fmt
from shipyard.web.sessions import FLASH_COOKIE, SESSION_COOKIE, Signer, load_secret, session_user
from shipyard.web.users import User

R = TypeVar("R", bound=Response)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 << 10
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
NAV = (("/", "Dashboard"), ("/builds", "Builds"), ("/packages", "Packages"),
       ("/workers", "Workers"), ("/stats", "Statistics"), ("/repository", "Repository"))


class PageError(Exception):
    """An answer other than the page: ``status`` and a sentence for the error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Web:
    """What every page request shares (one per coordinator process)."""

    coordinator: Coordinator
    signer: Signer
    env: Environment
    session_hours: float
    signin_limit: int
    signin_window: float
    stale_days: float
    secure: bool
    origins: frozenset[str]

    @property
    def db(self) -> Any:
        return self.coordinator.db

    @property
    def cfg(self) -> FarmConfig:
        return self.coordinator.cfg


_setup_lock = threading.Lock()


def get_web(request: Request) -> Web:
    """The page state, built at the first page request (it reads the HMAC key from the
    database, which the app factory must not do before the coordinator is asked to)."""
    state = request.app.state
    web = getattr(state, "web", None)
    if web is not None:
        return web
    with _setup_lock:
        web = getattr(state, "web", None)
        if web is None:
            coordinator: Coordinator = state.coordinator
            settings = coordinator.settings
            url = coordinator.cfg.url
            split = urlsplit(url)
            env = Environment(loader=FileSystemLoader(HERE / "templates"),
                              autoescape=select_autoescape(["html", "svg"]),
                              trim_blocks=True, lstrip_blocks=True)
            fmt.install_filters(env)
            web = Web(coordinator, Signer(load_secret(coordinator.db)), env,
                      session_hours=settings.web.session_hours,
                      signin_limit=max(1, settings.web.signin_attempts),
                      signin_window=settings.web.signin_window,
                      stale_days=settings.web.stale_days,
                      secure=split.scheme == "https",
                      origins=frozenset({f"{split.scheme}://{split.netloc}"}
                                        if split.netloc else set()))
            state.web = web
    return web


# ---------------------------------------------------------------------------------------
# Identity, rendering, errors


@dataclass
class Visitor:
    user: User | None
    sid: str | None

    @property
    def name(self) -> str | None:
        return self.user.name if self.user else None

    @property
    def actor(self) -> str:
        """Who acts: :func:`action` runs a handler only for a signed-in visitor."""
        if self.user is None:
            raise PageError(403, "Sign in to do this.")
        return self.user.name


def visitor_of(web: Web, request: Request) -> Visitor:
    sid = web.signer.unsign("session", request.cookies.get(SESSION_COOKIE))
    if sid is None:
        return Visitor(None, None)
    user = session_user(web.db, sid)
    return Visitor(user, sid if user else None)


def secure_headers(response: R) -> R:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def flash_message(web: Web, request: Request) -> str | None:
    value = web.signer.unsign("flash", request.cookies.get(FLASH_COOKIE))
    if value is None:
        return None
    try:
        padded = value + "=" * (-len(value) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def render(web: Web, request: Request, visitor: Visitor, template: str, title: str, *,
           status: int = 200, refresh: bool = False, **context: Any) -> HTMLResponse:
    flash = flash_message(web, request)
    html = web.env.get_template(template).render(
        request=request, path=request.url.path, user=visitor.user,
        csrf=web.signer.csrf(visitor.sid) if visitor.sid else None, flash=flash,
        title=title, nav=NAV, version=__version__, refresh=refresh, now=fmt.now(),
        **context)
    response = HTMLResponse(html, status_code=status)
    if flash is not None:
        drop_cookie(web, response, FLASH_COOKIE)
    return secure_headers(response)


def error_page(web: Web, request: Request, visitor: Visitor | None, status: int,
               message: str) -> HTMLResponse:
    titles = {400: "Bad request", 401: "Sign-in needed", 403: "Not allowed",
              404: "Not found", 409: "Not possible now", 413: "Too large",
              415: "Unsupported form", 429: "Too many attempts"}
    title = titles.get(status, "Error")
    return render(web, request, visitor or Visitor(None, None), "error.html", title,
                  status=status, message=message)


def page(fn: Callable[..., Response]) -> Callable[..., Response]:
    """A GET page: farm errors (unknown build, ...) become an error page, not JSON."""

    @functools.wraps(fn)
    def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        web = get_web(request)
        visitor = visitor_of(web, request)
        try:
            return fn(request, web, visitor, *args, **kwargs)
        except PageError as exc:
            return error_page(web, request, visitor, exc.status, exc.message)
        except FarmError as exc:
            return error_page(web, request, visitor, exc.status, exc.message)
        except ShipyardError as exc:
            return error_page(web, request, visitor, 400, exc.message)

    # FastAPI reads the parameters from the signature; hide the two we inject.
    signature = inspect.signature(fn)
    params = [p for name, p in signature.parameters.items() if name not in ("web", "visitor")]
    # A function object declares no __signature__, but inspect (and so FastAPI) reads it.
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


def action(fn: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """A POST form: checks origin, CSRF token and sign-in before ``fn`` runs."""

    @functools.wraps(fn)
    async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Response:
        web = await run_in_threadpool(get_web, request)
        visitor = await run_in_threadpool(visitor_of, web, request)
        try:
            form = await read_form(request)
            check_origin(web, request)
            if visitor.user is None:
                raise PageError(403, "Sign in to do this: anonymous visitors may look but "
                                     "not change anything.")
            if not web.signer.check_csrf(visitor.sid, form.get("csrf")):
                raise PageError(403, "The form's security token is missing or wrong (it "
                                     "may be from an older page). Go back, reload the page "
                                     "and try again.")
            return await fn(request, web, visitor, form, *args, **kwargs)
        except PageError as exc:
            return await run_in_threadpool(error_page, web, request, visitor, exc.status,
                                           exc.message)
        except FarmError as exc:
            return await run_in_threadpool(error_page, web, request, visitor, exc.status,
                                           exc.message)
        except ShipyardError as exc:
            return await run_in_threadpool(error_page, web, request, visitor, 400, exc.message)

    signature = inspect.signature(fn)
    params = [p for name, p in signature.parameters.items()
              if name not in ("web", "visitor", "form")]
    # A function object declares no __signature__, but inspect (and so FastAPI) reads it.
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper


async def read_form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise PageError(415, "Forms are sent as application/x-www-form-urlencoded.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(413, "The form is too large.")
    try:
        parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True,
                          max_num_fields=20)
    except ValueError:
        raise PageError(400, "The form has too many fields.") from None
    return {key: values[0] for key, values in parsed.items()}


def check_origin(web: Web, request: Request) -> None:
    """Browsers name the page a POST comes from; refuse other sites outright."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own and origin not in web.origins:
        raise PageError(403, "This form was sent from another site.")


def redirect(web: Web, location: str, message: str | None = None) -> RedirectResponse:
    response = RedirectResponse(location, status_code=303)
    if message:
        encoded = base64.urlsafe_b64encode(message.encode("utf-8")).decode("ascii")
        set_cookie(web, response, FLASH_COOKIE, web.signer.sign("flash", encoded.rstrip("=")),
                   max_age=60)
    return secure_headers(response)


def set_cookie(web: Web, response: Response, name: str, value: str, max_age: int) -> None:
    """Every cookie of ours: HttpOnly, SameSite=Strict, whole site, Secure over HTTPS."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=web.secure)


def drop_cookie(web: Web, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=web.secure)


def safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host``, no scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
