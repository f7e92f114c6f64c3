"""One aiohttp app: /healthz, /readyz, /metrics, /api/v1 (JSON), /status, admin overrides.

It reads the same immutable zone set and health snapshot the DNS side answers from, so what
it shows is what gdns answers. Admin actions need `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from importlib import resources

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gdns.health.overrides import STATES, OverrideError
from gdns.server import stats as query_stats
from gdns.web import metrics

log = logging.getLogger("gdns.web")
STATE = web.AppKey("state", object)  # the running App (see make_app)
TOKEN = web.AppKey("token", object)  # the admin token, or None
COLLECTORS = web.AppKey("collectors", list)
MAX_REQUEST = 64 * 1024  # bytes: admin requests are tiny
# Seconds a connection may stay open without a complete request: idle after a response, never
# sending one, or sending its headers a trickle at a time. aiohttp's default is an hour.
IDLE_TIMEOUT = 15.0


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_app(state, token: str | None) -> web.Application:
    """`state` is the running App: .engine, .monitor, .reloader, .ready, .not_ready_reason."""
    app = web.Application(client_max_size=MAX_REQUEST, middlewares=[_json_errors])
    app[STATE] = state
    app[TOKEN] = token
    totals = getattr(state, "query_totals", None) or (lambda: query_stats.total([]))
    app[COLLECTORS] = [metrics.MemberCollector(state), metrics.QueryCollector(totals)]
    for collector in app[COLLECTORS]:
        metrics.REGISTRY.register(collector)
    app.on_cleanup.append(_unregister)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/api/v1/zones", zones_view)
    app.router.add_get("/api/v1/pools", pools_view)
    app.router.add_get("/api/v1/reload", reload_view)
    app.router.add_get("/api/v1/overrides", overrides_view)
    app.router.add_post("/api/v1/overrides", override_set)
    app.router.add_delete("/api/v1/overrides", override_clear)
    app.router.add_get("/status", status_page)
    app.router.add_get("/", root)
    return app


def make_runner(state, token: str | None, idle_timeout: float = IDLE_TIMEOUT) -> web.AppRunner:
    """The app, ready to be served: no access log, connections closed after `idle_timeout`.
    Request lines and header fields are limited to 8190 bytes each (aiohttp's defaults:
    beyond them the answer is 400), bodies to MAX_REQUEST (413)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _QuietBadRequests) for f in server_log.filters):
        server_log.addFilter(_QuietBadRequests())
    return web.AppRunner(make_app(state, token), access_log=None, keepalive_timeout=idle_timeout)


class _QuietBadRequests(logging.Filter):
    """aiohttp logs every malformed request (a scanner, TLS sent to plain HTTP, a header over
    the limit) as an ERROR with a traceback that quotes the client's bytes: anyone who can
    reach the port could flood the log, and what a client sent (its credentials, say) would
    be written there. Such a request is the client's fault: one DEBUG line, no bytes quoted.
    Errors in gdns's own handlers (500) keep their traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            log.debug("refused a malformed HTTP request from %s (%s)", remote, type(exc).__name__)
            return False
        return True


async def _unregister(app: web.Application) -> None:
    for collector in app[COLLECTORS]:
        metrics.REGISTRY.unregister(collector)


@web.middleware
async def _json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        response = _error(exc.status, exc.reason)
        for name in ("WWW-Authenticate", "Allow"):  # a 401 or 405 is incomplete without them
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response


def _error(status: int, message: str, **extra) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


# -- health of gdns itself ---------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.ready:
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "not ready", "reason": state.not_ready_reason}, status=503)


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(metrics.REGISTRY)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


# -- the JSON API ----------------------------------------------------------------------------


def _engine(request: web.Request):
    engine = request.app[STATE].engine
    if engine is None:
        raise web.HTTPServiceUnavailable(reason="zones are not loaded yet")
    return engine


async def zones_view(request: web.Request) -> web.Response:
    engine = _engine(request)
    out = []
    for zone in engine.zones.zones.values():
        out.append(
            {
                "origin": str(zone.origin_label),
                "file": zone.file,
                "serial": zone.serial,
                "sha256": zone.digest,
                "names": len(zone.nodes),
                "pools": sorted(p.name for p in zone.pools.values()),
            }
        )
    return web.json_response({"zones": out})


async def pools_view(request: web.Request) -> web.Response:
    return web.json_response({"pools": pools_json(request.app[STATE])})


def pools_json(state) -> list[dict]:
    engine, monitor = state.engine, state.monitor
    if engine is None:
        return []
    recent = state.recent.counts() if getattr(state, "recent", None) else {}
    out = []
    for zone in engine.zones.zones.values():
        for pool in zone.pools.values():
            total = sum(recent.get(m.key, 0) for m in pool.members())
            groups = []
            for group in pool.groups:
                members = []
                for m in group.members:
                    health = engine.health.get(m.key)
                    target = monitor.target_of(m) if monitor else None
                    forced = monitor.overrides.table.get(m.key) if monitor else None
                    members.append(
                        {
                            "key": m.key,
                            "address": m.address,
                            "weight": m.weight,
                            "configured_status": m.status,
                            "state": health.state,
                            "reason": health.reason,
                            "since": health.since,
                            "rtt_ms": None if health.rtt is None else round(health.rtt * 1000, 3),
                            "share": round(recent.get(m.key, 0) / total, 4) if total else None,
                            "answers_recent": recent.get(m.key, 0),
                            "override": forced,
                            "check": _check_json(m, target),
                        }
                    )
                groups.append({"name": group.name, "weight": group.weight, "members": members})
            out.append(
                {
                    "name": pool.name,
                    "zone": str(zone.origin_label),
                    "strategy": pool.strategy,
                    "sticky": pool.sticky,
                    "answers": pool.answers,
                    "ttl": pool.ttl,
                    "degraded_ttl": pool.degraded_ttl,
                    "when_all_down": pool.when_all_down,
                    "groups": groups,
                }
            )
    return out


def _check_json(member, target) -> dict | None:
    check = member.check
    if check is None:
        return None
    out = {
        "name": check.name,
        "type": check.type,
        "address": member.probe or member.address,
        "port": check.port,
        "interval": check.interval,
        "timeout": check.timeout,
        "rise": check.rise,
        "fall": check.fall,
        "down_interval": check.down_interval,
    }
    if check.type != "tcp":
        out["path"] = check.path
    if target is not None:
        s = target.state
        out["last"] = {"ok": s.last_ok, "reason": s.last_reason, "time": s.last_time or None}
        out["successes_in_a_row"] = s.successes
        out["failures_in_a_row"] = s.failures
    return out


async def reload_view(request: web.Request) -> web.Response:
    return web.json_response(reload_json(request.app[STATE]))


def reload_json(state) -> dict:
    reloader = getattr(state, "reloader", None)
    last = reloader.last if reloader is not None else None
    if last is None:
        return {"last": None, "loaded_at": getattr(state, "loaded_at", None)}
    return {
        "last": {
            "ok": last.ok,
            "time": last.when,
            "zones": last.zones,
            "errors": [str(e) for e in last.errors],
        },
        "loaded_at": getattr(state, "loaded_at", None),
    }


async def overrides_view(request: web.Request) -> web.Response:
    monitor = request.app[STATE].monitor
    if monitor is None:
        return web.json_response({"overrides": {}})
    # Stale: the member is in none of the zones served (the override is kept, without effect).
    stale = set(monitor.stale_overrides())
    table = {key: {**entry, "stale": key in stale} for key, entry in monitor.overrides.table.items()}
    return web.json_response({"overrides": table})


# -- admin ---------------------------------------------------------------------------------


def _authorize(request: web.Request) -> None:
    token = request.app[TOKEN]
    if not token:
        raise web.HTTPForbidden(
            reason="the admin API is off: start gdns with --admin-token-file or GDNS_ADMIN_TOKEN"
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # The scheme is case-insensitive (RFC 9110 11.1); the token is compared in constant time.
    given_bytes = given.strip().encode(errors="surrogateescape")  # a non-UTF-8 header is a 401
    if scheme.lower() != "bearer" or not hmac.compare_digest(given_bytes, token.encode()):
        raise web.HTTPUnauthorized(
            reason="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


async def _body(request: web.Request) -> dict:
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(reason="the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return data


def _member(request: web.Request, key) -> tuple:
    if not isinstance(key, str):
        example = "www.example.com./main/192.0.2.10"
        raise web.HTTPBadRequest(reason=f"'member' must be a member key, e.g. {example}")
    for zone in _engine(request).zones.zones.values():
        for pool in zone.pools.values():
            for member in pool.members():
                if member.key == key:
                    return pool, member
    raise web.HTTPNotFound(reason=f"no member {key!r} (see /api/v1/pools for the keys)")


async def override_set(request: web.Request) -> web.Response:
    _authorize(request)
    state = request.app[STATE]
    data = await _body(request)
    pool, member = _member(request, data.get("member"))
    wanted = data.get("state")
    if wanted not in STATES:
        raise web.HTTPBadRequest(reason=f"'state' must be one of {', '.join(STATES)}")
    try:
        entry = state.monitor.overrides.set(member.key, wanted)
    except OverrideError as exc:
        return _error(507, str(exc))
    state.monitor.republish()
    longest = max(pool.ttl, pool.degraded_ttl or 0)
    expires = time.time() + longest
    return web.json_response(
        {
            "member": member.key,
            "state": wanted,
            "since": entry["since"],
            # Resolvers may keep answers that name this member for up to the longest TTL
            # gdns served for it: only after that has no client any reason to use it.
            "caches_expire_at": expires,
            "caches_expire_at_iso": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        }
    )


async def override_clear(request: web.Request) -> web.Response:
    _authorize(request)
    state = request.app[STATE]
    _engine(request)  # overrides are kept by the health monitor, which starts with the zones
    key = request.query.get("member")
    if key is None:
        key = (await _body(request)).get("member")
    if not isinstance(key, str):
        raise web.HTTPBadRequest(reason='give the member key as ?member=... or {"member": ...}')
    try:
        cleared = state.monitor.overrides.clear(key)
    except OverrideError as exc:
        return _error(507, str(exc))
    if not cleared:
        raise web.HTTPNotFound(reason=f"no override for {key!r}")
    state.monitor.republish()
    return web.json_response({"member": key, "cleared": True})


# -- the page for people -------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/status")


async def status_page(request: web.Request) -> web.Response:
    html = resources.files("gdns.web").joinpath("status.html").read_text(encoding="utf-8")
    return web.Response(text=html, content_type="text/html")
