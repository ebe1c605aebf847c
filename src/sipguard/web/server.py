"""The dashboard: an aiohttp server in the daemon's own event loop.

aiohttp rather than Starlette+uvicorn: one dependency that is both the server and the client the
tests and bench/web use; it runs as a plain task in the daemon's loop (no second server loop,
no thread), and its streaming responses make server-sent events a few lines.

It acts only through the daemon's command handler (`status`, `bans`, `ban`, `unban`, `allow`,
`explain`): the same code the control socket runs, so the page and `sipguard status` never
disagree. Other components add routes with one call (`add_route`), e.g. `/metrics`.

Security: 127.0.0.1 by default, where a visitor is signed in as "local" without a password;
on any other address a password (scrypt hash) is required or the daemon refuses to start.
Sessions are random ids in an HttpOnly, SameSite=Strict cookie (Secure under TLS); every POST
needs the session's CSRF token in X-CSRF-Token and, when the browser sends Origin, our own
origin. Failed logins are limited per source and each is an event the detection engine counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from ipaddress import ip_address
from typing import Any

from aiohttp import web

from sipguard.core import Event, Kind, Service
from sipguard.report.assets import chart_library
from sipguard.web.auth import LoginLimiter, Session, Sessions, csrf_ok
from sipguard.web.auth import verify_password as _verify
from sipguard.web.config import WebConfig
from sipguard.web.feed import OverviewFeed
from sipguard.web.live import LiveStats
from sipguard.web.overview import build_overview, search

CommandHandler = Callable[[str, dict[str, object]], Awaitable[object]]
Recorder = Callable[[str, str, str, str], Awaitable[None]]  # who, action, target, result
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "sipguard_session"
SESSION: web.RequestKey[Session | None] = web.RequestKey("session", Session)
MAX_STREAMS = 200
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
ACTIONS = ("ban", "unban", "extend", "allow")


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


@cache
def _static(name: str) -> bytes:
    return resources.files("sipguard.web").joinpath("static", name).read_bytes()


@cache
def _chart_bytes() -> bytes:
    return chart_library().encode()


class WebServer:
    def __init__(
        self,
        config: WebConfig,
        handle: CommandHandler,
        refused: tuple[type[Exception], ...],
        live: LiveStats,
        on_login_failed: Callable[[Event], None],
        record: Recorder,
        audit: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config.check()
        self.config, self.handle, self.refused, self.live = config, handle, refused, live
        self.on_login_failed, self.record, self.audit, self.clock = (
            on_login_failed,
            record,
            audit,
            clock,
        )
        self.sessions = Sessions(config.session_hours * 3600)
        self.limiter = LoginLimiter(config.login_attempts)
        self.counts = {"login_failed": 0, "login_refused": 0, "csrf_refused": 0, "actions": 0}
        self.app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        self._public = {"/login", "/static/app.css"}
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        # one overview an interval for every viewer; made when detection is quiet (live.seen)
        self.feed = OverviewFeed(self.overview, config.push_interval, lambda: live.seen)
        self._routes()

    # ---- routes --------------------------------------------------------------------------
    def add_route(self, method: str, path: str, handler: Handler, public: bool = False) -> None:
        """One more route (e.g. `/metrics`), before `start()`. `public`: no login needed."""
        self.app.router.add_route(method, path, handler)
        if public:
            self._public.add(path)

    def _routes(self) -> None:
        add = self.add_route
        add("GET", "/", self._page("index.html"))
        add("GET", "/login", self._login_page)
        add("POST", "/login", self._login)
        add("POST", "/logout", self._logout)
        add("GET", "/static/{name}", self._asset)
        add("GET", "/api/session", self._session)
        add("GET", "/api/overview", self._overview)
        add("GET", "/api/stream", self._stream)
        add("GET", "/api/bans", self._bans)
        add("GET", "/api/attackers", self._attackers)
        add("GET", "/api/explain", self._explain)
        add("GET", "/api/fraud", self._fraud)
        add("GET", "/api/audit", self._audit)
        add("POST", "/api/action", self._action)

    # ---- start / stop --------------------------------------------------------------------
    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        cfg = self.config
        site = web.TCPSite(self._runner, cfg.listen, cfg.port, ssl_context=cfg.ssl_context())
        await site.start()
        self._pusher = asyncio.create_task(self.feed.run())

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the kernel's choice for port 0 in tests)."""
        assert self._runner is not None
        for addr in self._runner.addresses:
            return int(addr[1])
        return self.config.port

    async def close(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- the guard: sessions, login, CSRF, headers --------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = self.clock()
        sid = request.cookies.get(COOKIE)
        session = self.sessions.get(sid, now)
        new_sid = None
        if session is None and not self.config.login_required:
            new_sid, session = self.sessions.create("local", now)  # loopback: no password
        request[SESSION] = session  # None: not logged in (public paths only)
        if session is None and request.path not in self._public:
            if request.path.startswith("/api/") or request.method != "GET":
                return self._headers(web.json_response({"error": "login required"}, status=401))
            return self._headers(_redirect("/login"))
        changing = request.method not in ("GET", "HEAD") and request.path != "/login"
        if changing and not (
            self._same_origin(request) and csrf_ok(session, request.headers.get("X-CSRF-Token"))
        ):
            self.counts["csrf_refused"] += 1
            return self._headers(web.json_response({"error": "CSRF check failed"}, status=403))
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._headers(exc)
            raise
        if new_sid is not None and not response.prepared:
            self._set_cookie(response, new_sid)
        return self._headers(response)

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser's cross-site form (those always send Origin for POST)
        return origin == f"{request.scheme}://{request.host}"

    def _headers(self, response: web.StreamResponse) -> web.StreamResponse:
        if not response.prepared:
            h = response.headers
            h.setdefault("Content-Security-Policy", CSP)
            h.setdefault("X-Content-Type-Options", "nosniff")
            h.setdefault("Referrer-Policy", "same-origin")  # no-referrer makes Origin "null"
            h.setdefault("X-Frame-Options", "DENY")
            h.setdefault("Cache-Control", "no-store")
        return response

    def _set_cookie(self, response: web.StreamResponse, sid: str) -> None:
        response.set_cookie(
            COOKIE,
            sid,
            httponly=True,
            samesite="Strict",
            secure=bool(self.config.tls_cert),
            path="/",
            max_age=int(self.config.session_hours * 3600),
        )

    @staticmethod
    def _who(request: web.Request) -> Session:
        session = request[SESSION]
        assert session is not None  # the guard let no anonymous request through
        return session

    # ---- pages ---------------------------------------------------------------------------
    def _page(self, name: str) -> Handler:
        async def page(request: web.Request) -> web.StreamResponse:
            return web.Response(body=_static(name), content_type="text/html", charset="utf-8")

        return page

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        types = {"app.js": "text/javascript", "app.css": "text/css"}
        if name == "chart.umd.min.js":
            body = _chart_bytes()
        elif name in types:
            body = _static(name)
        else:
            raise web.HTTPNotFound()
        ctype = types.get(name, "text/javascript")
        response = web.Response(body=body, content_type=ctype, charset="utf-8")
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        if request[SESSION] is not None:
            return _redirect("/")
        return web.Response(body=_static("login.html"), content_type="text/html", charset="utf-8")

    async def _login(self, request: web.Request) -> web.StreamResponse:
        now, peer = self.clock(), request.remote or ""
        if not self._same_origin(request):
            raise web.HTTPForbidden(text="cross-origin login refused")
        form = await request.post()
        user, password = str(form.get("user", ""))[:64], str(form.get("password", ""))
        if not self.limiter.allowed(peer, now):
            self.counts["login_refused"] += 1
            self._login_event(request, user, now, "too many failed logins")
            raise web.HTTPTooManyRequests(text="too many failed logins; wait a minute")
        stored = self.config.password_hash
        good = False
        if stored:  # the KDF runs for a wrong user too: the answer's timing tells nothing
            # ~50 ms of CPU: in a thread, so bans are not held up by a login
            verified = await asyncio.to_thread(_verify, password, stored)
            good = verified and hmac.compare_digest(user.encode(), self.config.user.encode())
        if not good:
            self.limiter.failed(peer, now)
            self.counts["login_failed"] += 1
            self._login_event(request, user, now, "wrong password")
            await self.record(user or "?", "login_failed", peer, "refused")
            return _redirect("/login?failed=1")
        self.limiter.succeeded(peer)
        self.sessions.drop(request.cookies.get(COOKIE))
        sid, _ = self.sessions.create(user, now)
        await self.record(user, "login", peer, "ok")
        response = _redirect("/")
        self._set_cookie(response, sid)
        return response

    def _login_event(self, request: web.Request, user: str, now: float, detail: str) -> None:
        try:
            ip = ip_address(request.remote or "")
        except ValueError:
            return
        self.on_login_failed(
            Event(
                time=now,
                kind=Kind.WEB_LOGIN_FAILED,
                service=Service.WEB,
                ip=ip,
                transport="https" if self.config.tls_cert else "http",
                account=user or None,
                target="/login",
                user_agent=request.headers.get("User-Agent", "")[:200] or None,
                detail=detail,
            )
        )

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.drop(request.cookies.get(COOKIE))
        response = _redirect("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    # ---- reading -------------------------------------------------------------------------
    async def _session(self, request: web.Request) -> web.StreamResponse:
        s = self._who(request)
        return web.json_response(
            {"user": s.user, "csrf": s.csrf, "login": self.config.login_required}
        )

    async def overview(self) -> dict[str, Any]:
        # a turn of the event loop between the steps: a log line read meanwhile is parsed
        # (and its ban sent) after one step, not after the whole overview (~1 ms a step)
        status = await self.handle("status", {})
        await asyncio.sleep(0)
        bans = await self.handle("ban_summary", {})  # not `bans`: no row for each of thousands
        await asyncio.sleep(0)
        assert isinstance(status, dict) and isinstance(bans, dict)
        return build_overview(status, bans, self.live, self.clock())

    async def _overview(self, request: web.Request) -> web.StreamResponse:
        snap = await self.feed.latest()
        return web.Response(body=snap.body, content_type="application/json")

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        if self.feed.streams >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text="too many live viewers")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        self._headers(response)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            async with contextlib.aclosing(self.feed.frames()) as frames:
                async for frame in frames:
                    await response.write(frame)
        return response

    async def _bans(self, request: web.Request) -> web.StreamResponse:
        bans = await self.handle("bans", {})
        assert isinstance(bans, list)
        bans.sort(key=lambda b: -float(b.get("start") or 0))
        return web.json_response(search(bans, request.query.get("q", "")))

    async def _attackers(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            search(self.live.attackers(self.clock()), request.query.get("q", ""))
        )

    async def _explain(self, request: web.Request) -> web.StreamResponse:
        return await self._command("explain", {"addr": request.query.get("addr", "")})

    async def _fraud(self, request: web.Request) -> web.StreamResponse:
        status = await self.handle("status", {})
        assert isinstance(status, dict)
        return web.json_response({"alerts": self.live.fraud, "status": status.get("fraud", {})})

    async def _audit(self, request: web.Request) -> web.StreamResponse:
        if self.audit is None:  # 200: nothing failed, there is just nothing to show
            return web.json_response({"error": "no Asterisk configuration to audit ([web])"})
        return web.json_response(await self.audit())

    async def _command(self, cmd: str, args: dict[str, object]) -> web.StreamResponse:
        try:
            return web.json_response(await self.handle(cmd, args))
        except self.refused as exc:
            return web.json_response({"error": str(exc)}, status=400)

    # ---- acting --------------------------------------------------------------------------
    async def _action(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        if not isinstance(body, dict) or body.get("action") not in ACTIONS:
            return web.json_response({"error": f"action must be one of {ACTIONS}"}, status=400)
        action, addr = str(body["action"]), str(body.get("addr", ""))[:64]
        who = self._who(request).user
        note = f"{str(body.get('note') or '')[:200]} (web: {who})".strip()
        args: dict[str, object]
        if action == "allow":
            cmd, args = "allow", {"cidr": addr, "note": note}
        elif action == "unban":
            cmd, args = "unban", {"addr": addr, "reason": f"unbanned by {who} (web)"}
        else:  # ban, or extend: a new ban supersedes the running one with the new duration
            cmd, args = "ban", {"addr": addr, "for": str(body.get("for") or "1h"), "reason": note}
        try:
            result = await self.handle(cmd, args)
        except self.refused as exc:
            await self.record(who, action, addr, f"refused: {exc}")
            return web.json_response({"error": str(exc)}, status=400)
        self.counts["actions"] += 1
        await self.record(who, action, addr, "ok")
        return web.json_response({"ok": True, "result": result})
