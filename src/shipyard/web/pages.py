"""The farm's web pages, served by the coordinator next to its JSON API.

Anyone may read every page and every log (the seed's syncweb); changing anything (force a
build, abort, requeue, pause, resume) needs a signed-in user, and every such form carries a
CSRF token that is checked before anything else happens. Each page action calls the same
farm function (:mod:`shipyard.farm.actions`) as the admin-token API route that does the
same, so the two can never disagree.

Pages render on the server (Jinja2) and work without JavaScript; ``static/farm.js`` only
adds the live log (Server-Sent Events from ``/builds/<id>/events``) and auto-refresh.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from shipyard.farm import actions, buildlog, buildrequests, views
from shipyard.farm import queries as farm
from shipyard.farm.errors import FarmError
from shipyard.farm.stats import compute, worker_summary
from shipyard.farm.views import FINAL_STATES, LIVE_STATES
from shipyard.web import format as fmt
from shipyard.web import repoview, stats
from shipyard.web.handlers import (
    HERE,
    PageError,
    Visitor,
    Web,
    action,
    check_origin,
    client_address,
    drop_cookie,
    error_page,
    get_web,
    page,
    read_form,
    redirect,
    render,
    safe_next,
    set_cookie,
)
from shipyard.web.live import STREAM_CHUNK, log_events
from shipyard.web.sessions import (
    PRE_COOKIE,
    SESSION_COOKIE,
    blocked_for,
    clear_failures,
    create_session,
    end_session,
    record_failure,
)
from shipyard.web.statcharts import chart_set
from shipyard.web.users import authenticate

INITIAL_LOG_BYTES = 512 << 10
HISTORY = 50
MAX_ID = 2**31 - 1  # ids are INTEGER columns: larger numbers name no build on any database
BuildId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


def install(app: FastAPI) -> None:
    """Mount the pages and their static files on the coordinator's app."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router())


# ---------------------------------------------------------------------------------------
# Pages


def router() -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/", response_class=HTMLResponse)
    @page
    def dashboard(request: Request, web: Web, visitor: Visitor) -> Response:
        db, cfg = web.db, web.cfg
        workers = farm.list_workers(db, cfg)
        return render(
            web, request, visitor, "dashboard.html", "Dashboard", refresh=True,
            queued=farm.list_builds(db, cfg, state="queued", limit=HISTORY),
            running=farm.list_builds(db, cfg, state="running", limit=HISTORY),
            failures=farm.list_failures(db, cfg, limit=10),
            workers=workers, online=sum(1 for w in workers if w.status != "offline"),
            failed_today=farm.failures_since(db, 24),
            stale=farm.stale_packages(db, web.stale_days), stale_days=web.stale_days)

    @r.get("/builds", response_class=HTMLResponse)
    @page
    def builds(request: Request, web: Web, visitor: Visitor, state: str | None = None,
               package: str | None = None, worker: str | None = None,
               before: int | None = Query(None, ge=1, le=MAX_ID)) -> Response:
        state = state or None
        if state is not None and state not in views.FILTER_STATES:
            raise PageError(400, f"Unknown state {state!r}: choose one of "
                                 f"{', '.join(views.FILTER_STATES)}.")
        package = (package or "").strip()[:300] or None
        worker = (worker or "").strip()[:100] or None
        rows = farm.list_builds(web.db, web.cfg, state=state, package=package,
                                   worker=worker, limit=HISTORY, before=before)
        older = None
        if len(rows) == HISTORY and state != "queued":
            params = {"state": state, "package": package, "worker": worker,
                      "before": rows[-1].id}
            older = "/builds?" + "&".join(f"{k}={quote(str(v), safe=':')}"
                                          for k, v in params.items() if v)
        return render(web, request, visitor, "builds.html", "Builds", refresh=before is None,
                      builds=rows, states=views.FILTER_STATES, state=state, package=package or "",
                      worker=worker or "", older=older)

    @r.get("/builds/{build_id}", response_class=HTMLResponse)
    @page
    def build(request: Request, web: Web, visitor: Visitor, build_id: BuildId) -> Response:
        db, cfg = web.db, web.cfg
        view = farm.get_build(db, cfg, build_id)
        start = max(0, view.log_bytes - INITIAL_LOG_BYTES)
        log = buildlog.read_log(db, cfg, build_id, start, INITIAL_LOG_BYTES + STREAM_CHUNK)
        title = f"Build {build_id}: {view.package} {view.version or ''}".strip()
        return render(web, request, visitor, "build.html", title, build=view, log=log,
                      log_skipped=start, live=view.state in LIVE_STATES,
                      final=view.state in FINAL_STATES,
                      max_attempts=cfg.max_attempts)

    @r.get("/builds/{build_id}/log.txt", response_class=PlainTextResponse)
    @page
    def build_log_text(request: Request, web: Web, visitor: Visitor,
                       build_id: BuildId) -> Response:
        log = buildlog.read_log(web.db, web.cfg, build_id, 0, 64 << 20)
        response = PlainTextResponse(log.text)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @r.get("/builds/{build_id}/events")
    async def build_events(request: Request, build_id: BuildId,
                           offset: int = Query(0, ge=0)) -> Response:
        """The build's log from ``offset`` as Server-Sent Events, until the build ends:
        ``log`` (text, with the next offset as event id, so a reconnecting browser
        resumes where it was), ``state`` when it changes, ``end`` when it is over."""
        web = await run_in_threadpool(get_web, request)
        try:
            await run_in_threadpool(farm.get_build, web.db, web.cfg, build_id)
        except FarmError as exc:
            return PlainTextResponse(exc.message, status_code=exc.status)
        resume = request.headers.get("last-event-id", "")
        if resume.isdigit():
            offset = int(resume)
        return StreamingResponse(log_events(web, request, build_id, offset),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    @r.post("/builds/{build_id}/abort")
    @action
    async def abort(request: Request, web: Web, visitor: Visitor, form: dict[str, str],
                    build_id: BuildId) -> Response:
        view = await run_in_threadpool(actions.abort, web.db, web.cfg, build_id,
                                       visitor.actor)
        if view.state == "cancelled":
            message = f"Build {build_id} was cancelled before it started."
        else:
            message = (f"Abort requested: worker {view.worker} stops build {build_id} "
                       "at its next heartbeat.")
        return redirect(web, f"/builds/{build_id}", message)

    @r.post("/builds/{build_id}/requeue")
    @action
    async def requeue(request: Request, web: Web, visitor: Visitor, form: dict[str, str],
                      build_id: BuildId) -> Response:
        view = await run_in_threadpool(actions.requeue, web.db, web.cfg, build_id,
                                       visitor.actor)
        web.coordinator.wake_claims()
        return redirect(web, f"/builds/{view.id}",
                        f"Build {view.id} queued: {view.package} at the commit of "
                        f"build {build_id}.")

    @r.get("/packages", response_class=HTMLResponse)
    @page
    def packages(request: Request, web: Web, visitor: Visitor) -> Response:
        return render(web, request, visitor, "packages.html", "Packages",
                      packages=farm.list_packages(web.db))

    @r.get("/packages/{name:path}", response_class=HTMLResponse)
    @page
    def package(request: Request, web: Web, visitor: Visitor, name: str) -> Response:
        view = farm.get_package(web.db, name)
        history = farm.list_builds(web.db, web.cfg, package=name, limit=HISTORY)
        last_success = next((b for b in history if b.state == "succeeded"), None)
        published = repoview.published_versions(web.coordinator.repo_dir, name)
        return render(web, request, visitor, "package.html", f"Package {name}",
                      package=view, builds=history, last_success=last_success,
                      published=published, more=len(history) == HISTORY)

    @r.post("/packages/{name:path}/force")
    @action
    async def force(request: Request, web: Web, visitor: Visitor, form: dict[str, str],
                    name: str) -> Response:
        view, created, note = await run_in_threadpool(
            buildrequests.request_package_build, web.db, web.cfg, name, None, True, visitor.actor)
        if created and view.state == "queued":
            web.coordinator.wake_claims()
        message = (f"Build {view.id} queued: {name} {view.version or ''}".rstrip()
                   + "." if created else f"No new build: {note.strip()}.")
        return redirect(web, f"/builds/{view.id}", message)

    @r.get("/workers", response_class=HTMLResponse)
    @page
    def workers(request: Request, web: Web, visitor: Visitor) -> Response:
        return render(web, request, visitor, "workers.html", "Workers", refresh=True,
                      workers=farm.list_workers(web.db, web.cfg))

    @r.get("/workers/{name}", response_class=HTMLResponse)
    @page
    def worker(request: Request, web: Web, visitor: Visitor, name: str,
               days: str | None = None) -> Response:
        view = farm.get_worker(web.db, web.cfg, name)
        try:
            period = stats.parse_period(days, None, None)
        except stats.PeriodError as exc:
            raise PageError(400, str(exc)) from None
        summary = worker_summary(web.db, name, period)
        history = farm.list_builds(web.db, web.cfg, worker=name, limit=HISTORY)
        return render(web, request, visitor, "worker.html", f"Worker {name}", refresh=True,
                      worker=view, summary=summary, builds=history, presets=stats.PRESETS,
                      days=period.days)

    @r.post("/workers/{name}/pause")
    @action
    async def pause(request: Request, web: Web, visitor: Visitor, form: dict[str, str],
                    name: str) -> Response:
        await run_in_threadpool(actions.set_worker_paused, web.db, web.cfg, name, True)
        return redirect(web, f"/workers/{quote(name)}",
                        f"Worker {name} paused: it gets no new builds; running ones finish.")

    @r.post("/workers/{name}/resume")
    @action
    async def resume(request: Request, web: Web, visitor: Visitor, form: dict[str, str],
                     name: str) -> Response:
        await run_in_threadpool(actions.set_worker_paused, web.db, web.cfg, name, False)
        web.coordinator.wake_claims()
        return redirect(web, f"/workers/{quote(name)}",
                        f"Worker {name} resumed: it takes builds again.")

    @r.get("/stats", response_class=HTMLResponse)
    @page
    def statistics(request: Request, web: Web, visitor: Visitor, days: str | None = None,
                   start: str | None = Query(None, alias="from", max_length=20),
                   end: str | None = Query(None, alias="to", max_length=20)) -> Response:
        problem = None
        try:
            period = stats.parse_period(days, start, end)
        except stats.PeriodError as exc:
            problem = str(exc)
            period = stats.parse_period(None, None, None)
        data = compute(web.db, period)
        return render(web, request, visitor, "stats.html", "Statistics",
                      status=400 if problem else 200, stats=data, problem=problem,
                      presets=stats.PRESETS, start=start or "", end=end or "",
                      charts=chart_set(data))

    @r.get("/repository", response_class=HTMLResponse)
    @page
    def repository(request: Request, web: Web, visitor: Visitor) -> Response:
        root = web.coordinator.repo_dir
        view = repoview.overview(root) if root is not None else None
        return render(web, request, visitor, "repository.html", "Repository", refresh=True,
                      repo=view, backlog=farm.publish_backlog(web.db, web.cfg),
                      now_dt=fmt.now())

    # -- signing in and out -------------------------------------------------------------

    @r.get("/signin", response_class=HTMLResponse)
    @page
    def signin_form(request: Request, web: Web, visitor: Visitor,
                    next: str | None = None) -> Response:
        return _signin_page(web, request, visitor, safe_next(next))

    @r.post("/signin")
    async def signin(request: Request) -> Response:
        web = await run_in_threadpool(get_web, request)
        anonymous = Visitor(None, None)
        try:
            form = await read_form(request)
            check_origin(web, request)
        except PageError as exc:
            return await run_in_threadpool(error_page, web, request, anonymous, exc.status,
                                           exc.message)
        target = safe_next(form.get("next"))
        pre = web.signer.unsign("pre", request.cookies.get(PRE_COOKIE))
        if not web.signer.check_csrf(pre and f"pre:{pre}", form.get("csrf")):
            return await run_in_threadpool(
                _signin_page, web, request, anonymous, target, 403,
                "The sign-in form expired or did not come from this site. Try again.")
        address = client_address(request)
        wait = await run_in_threadpool(blocked_for, web.db, address, web.signin_limit,
                                       web.signin_window)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            response: Response = await run_in_threadpool(
                _signin_page, web, request, anonymous, target, 429,
                f"Too many failed sign-ins from your address. Try again in about {minutes} "
                f"minute{'s' if minutes != 1 else ''}.")
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        name = form.get("name", "").strip()[:100]
        password = form.get("password", "")[:1024]
        user = await run_in_threadpool(authenticate, web.db, name, password)
        if user is None:
            await run_in_threadpool(record_failure, web.db, address, web.signin_window)
            return await run_in_threadpool(
                _signin_page, web, request, anonymous, target, 401,
                "Wrong user name or password.", name)
        await run_in_threadpool(clear_failures, web.db, address)
        sid = await run_in_threadpool(create_session, web.db, user, address,
                                      web.session_hours)
        response = redirect(web, target, f"Signed in as {user.name}.")
        set_cookie(web, response, SESSION_COOKIE, web.signer.sign("session", sid),
                   max_age=int(web.session_hours * 3600))
        drop_cookie(web, response, PRE_COOKIE)
        return response

    @r.post("/signout")
    @action
    async def signout(request: Request, web: Web, visitor: Visitor,
                      form: dict[str, str]) -> Response:
        if visitor.sid:
            await run_in_threadpool(end_session, web.db, visitor.sid)
        response = redirect(web, "/", "Signed out.")
        drop_cookie(web, response, SESSION_COOKIE)
        return response

    return r


def _signin_page(web: Web, request: Request, visitor: Visitor, target: str,
                 status: int = 200, problem: str | None = None,
                 name: str = "") -> HTMLResponse:
    """The form, with a fresh pre-session cookie its CSRF token is bound to."""
    pre = secrets.token_urlsafe(24)
    response = render(web, request, visitor, "signin.html", "Sign in", status=status,
                      signin_csrf=web.signer.csrf(f"pre:{pre}"), next_url=target,
                      problem=problem, name=name)
    set_cookie(web, response, PRE_COOKIE, web.signer.sign("pre", pre), max_age=3600)
    return response
