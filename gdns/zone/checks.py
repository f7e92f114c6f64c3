"""The `checks:` section of a zone file: reusable health checks, referenced by pools."""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from gdns.zone.duration import check_seconds
from gdns.zone.errors import Path
from gdns.zone.model import Strict, validate

Interval = Annotated[float, BeforeValidator(check_seconds), Field(gt=0, le=86400, allow_inf_nan=False)]
_STATUS_RANGE = re.compile(r"^([1-5]\d\d)\s*-\s*([1-5]\d\d)$")


class CheckModel(Strict):
    type: Literal["http", "https", "tcp"] = "http"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    path: str = "/"
    method: Literal["GET", "HEAD"] = "GET"
    host: str | None = None
    expect: Any = None  # statuses: 200, "200-299", or a list of them
    body: str | None = None  # a substring the body must contain
    body_regex: str | None = None  # or a regular expression it must match
    headers: dict[str, str] = {}
    interval: Interval = 5.0
    timeout: Interval = 2.0
    rise: Annotated[int, Field(ge=1, le=100)] = 2
    fall: Annotated[int, Field(ge=1, le=100)] = 3
    down_interval: Interval | None = None  # while down; default twice the interval
    verify: bool = True
    ca: str | None = None
    follow_redirects: bool = False


_HTTP_ONLY = frozenset(
    {"path", "method", "host", "expect", "body", "body_regex", "headers", "verify", "ca", "follow_redirects"}
)


@dataclass(frozen=True, slots=True)
class Check:
    """A compiled check. Two members probed with equal checks at one address share a probe."""

    type: str
    port: int
    path: str = "/"
    method: str = "GET"
    host: str | None = None
    expect: frozenset[int] = frozenset(range(200, 300))
    body: str | None = None
    body_regex: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 2
    fall: int = 3
    down_interval: float = 10.0
    verify: bool = True
    ca: str | None = None
    follow_redirects: bool = False
    name: str = field(default="", compare=False)  # for people: not part of its identity


def compile_checks(compiler, data: Any) -> dict[str, Check | None]:
    """Every check by name; None for a check with errors (reported here, once)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        return {}  # already reported by the zone model ("expected a mapping"): once is enough
    out = {}
    for name, body in data.items():
        out[name] = _compile_one(compiler, ("checks", name), name, body)
    return out


def _compile_one(compiler, base: Path, name: str, body: Any) -> Check | None:
    model, errors = validate(CheckModel, body, compiler.doc, base)
    compiler.errors.extend(errors)
    if model is None:
        return None
    before = len(compiler.errors)
    err = compiler.error
    port = model.port or {"http": 80, "https": 443}.get(model.type)
    if port is None:
        err(base, "a tcp check needs a 'port'")
    if model.type == "tcp":
        # Any HTTP key given, even at its default value, would be silently ignored.
        for key in CheckModel.model_fields:
            if key in _HTTP_ONLY and key in model.model_fields_set:
                err(base + (key,), f"'{key}' is for http and https checks, not tcp", key=True)
    elif model.method == "HEAD":
        for key in ("body", "body_regex"):
            if getattr(model, key) is not None:
                err(base + (key,), f"a HEAD response has no body: '{key}' needs method GET", key=True)
    if not model.path.startswith("/"):
        err(base + ("path",), f"path must start with '/', got {model.path!r}")
    if model.timeout >= model.interval:
        err(
            base + ("timeout",),
            f"timeout ({model.timeout:g}s) must be shorter than interval ({model.interval:g}s)",
        )
    if model.body is not None and model.body_regex is not None:
        err(base + ("body_regex",), "give 'body' (a substring) or 'body_regex', not both", key=True)
    if model.body_regex is not None:
        try:
            re.compile(model.body_regex)
        except re.error as exc:
            err(base + ("body_regex",), f"not a regular expression: {exc}")
    if model.ca is not None:
        problem = ca_problem(model.ca)
        if problem:
            err(base + ("ca",), problem)
    expect = _statuses(err, base + ("expect",), model.expect)
    if len(compiler.errors) > before or expect is None:
        return None
    return Check(
        type=model.type,
        port=port,
        path=model.path,
        method=model.method,
        host=model.host,
        expect=expect,
        body=model.body,
        body_regex=model.body_regex,
        headers=tuple(sorted(model.headers.items())),
        interval=model.interval,
        timeout=model.timeout,
        rise=model.rise,
        fall=model.fall,
        down_interval=model.down_interval or 2 * model.interval,
        verify=model.verify,
        ca=model.ca,
        follow_redirects=model.follow_redirects,
        name=name,
    )


def ca_problem(path: str) -> str | None:
    """Why probes could not use the CA bundle at `path` (relative to the working directory),
    or None. Checked when zones load, so a missing or broken file is a zone error, not a
    probe that fails later; the file must stay readable while it is used."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot read the CA file {path!r}: {exc.strerror or exc}"
    return _ca_problem(path, st.st_ino, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _ca_problem(path: str, *stamp: int) -> str | None:
    """Once per version of the file (`stamp`), however many checks name it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:  # before OSError, which it is a kind of
        return f"the CA file {path!r} holds no usable certificate in PEM form ({exc.reason or exc})"
    except OSError as exc:
        return f"cannot read the CA file {path!r}: {exc.strerror or exc}"
    return None


def _statuses(err, path: Path, value: Any) -> frozenset[int] | None:
    """200, "200-299", or a list of them; by default any 2xx."""
    if value is None:
        return frozenset(range(200, 300))
    items = value if isinstance(value, list) else [value]
    out: set[int] = set()
    for i, item in enumerate(items):
        where = path + (i,) if isinstance(value, list) else path
        if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
            out.add(item)
            continue
        match = _STATUS_RANGE.match(item) if isinstance(item, str) else None
        if match and int(match.group(1)) <= int(match.group(2)):
            out.update(range(int(match.group(1)), int(match.group(2)) + 1))
            continue
        err(where, f"expected an HTTP status (e.g. 200) or a range (e.g. 200-299), got {item!r}")
        return None
    if not out:
        err(path, "list at least one status")
        return None
    return frozenset(out)
