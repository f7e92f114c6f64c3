"""The `pools:` section of a zone file: shape (pydantic) and meaning, compiled to Pools."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import sys
import types
import typing
from typing import Annotated, Any, Literal

from dnslib import AAAA, A, DNSLabel
from pydantic import BaseModel, Field

from gdns.strategy import STRATEGIES
from gdns.zone.errors import Path, ZoneError
from gdns.zone.model import Seconds, Strict, unknown_key_message, validate
from gdns.zone.pool import Group, Member, Pool, Rule, stable_hash
from gdns.zone.rdata import describe

Weight = Annotated[float, Field(gt=0, le=1_000_000)]
Tolerance = Annotated[float, Field(ge=0, allow_inf_nan=False)]
CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# A group name is part of each member's health key "<owner>/<group>/<address>", so no "/",
# and it is shown in logs and explain output, so no blanks or control characters.
_GROUP_NAME = re.compile(r"^[^/\s\x00-\x1f\x7f]+$")
_CONDITIONS = ("subnets", "countries", "continents")
_FAMILIES = {f: f for f in (frozenset({4}), frozenset({6}), frozenset({4, 6}), frozenset())}  # shared


class MemberModel(Strict):
    address: str
    weight: Weight = 1.0
    status: Literal["up", "down", "drain"] = "up"
    check: str | None = None  # a name from `checks:`, or "none"
    probe: str | None = None  # probe this address instead of `address`


class GroupModel(Strict):
    members: Annotated[list[MemberModel], Field(min_length=1)]
    weight: Weight = 1.0
    location: list[float] | None = None
    check: str | None = None


class RuleModel(Strict):
    subnets: list[str] = []
    countries: list[str] = []
    continents: list[str] = []
    groups: Any  # a list of group names, or "nearest": checked below for a clearer message


class PoolModel(Strict):
    ttl: Seconds = 30
    strategy: str = "weighted"
    sticky: bool = False
    answers: Annotated[int, Field(ge=1, le=32)] = 1
    groups: dict[str, GroupModel] | None = None
    # shorthand for one group named "default"
    members: Annotated[list[MemberModel], Field(min_length=1)] | None = None
    rules: list[RuleModel] | None = None
    when_all_down: Literal["all", "fallback", "nodata", "servfail"] = "all"
    fallback: Any = None  # an address or a list of addresses: checked below
    tolerance_ms: Tolerance = 5.0
    tolerance_percent: Tolerance = 10.0
    check: str | None = None  # the check for every member, unless a group or member says otherwise
    degraded_ttl: Seconds | None = None


def compile_pool(
    compiler, key: str, data: Any, owner: DNSLabel, geoip: bool, checks: dict | None = None
) -> Pool | None:
    """One pool; errors go to `compiler.error` with their paths."""
    base: Path = ("pools", key)
    model, errors = validate(PoolModel, data, compiler.doc, base)
    compiler.errors.extend(_with_hints(errors, base))
    if model is None:
        return None
    before = len(compiler.errors)
    err = compiler.error
    registered = STRATEGIES.get(model.strategy)
    if registered is None:
        err(base + ("strategy",), _unknown_strategy(model.strategy))
    elif model.sticky and not registered.sticky_allowed:
        err(base + ("sticky",), f"sticky has no meaning with strategy {model.strategy!r}")

    owner_text = str(owner).lower()
    if model.groups is not None and model.members is not None:
        err(base + ("members",), "give either 'groups' or 'members' (one group), not both", key=True)
        return None
    if model.groups is None and model.members is None:
        err(base, "a pool needs 'groups' (or 'members' for a single group)")
        return None
    if model.members is not None:
        groups_in = {"default": GroupModel(members=model.members)}
        gpath = lambda name: base  # noqa: E731
        mpath = lambda name, i: base + ("members", i)  # noqa: E731
    else:
        groups_in = model.groups
        gpath = lambda name: base + ("groups", name)  # noqa: E731
        mpath = lambda name, i: base + ("groups", name, "members", i)  # noqa: E731
    if not groups_in:
        err(base + ("groups",), "a pool needs at least one group")
        return None

    groups = []
    for name, group in groups_in.items():
        if not _GROUP_NAME.match(name):
            err(gpath(name), f"group name {name!r} must not be empty or contain '/' or blanks", key=True)
        members, seen = [], set()
        for i, m in enumerate(group.members):
            path = mpath(name, i) + ("address",)
            ip = _address(err, path, m.address)
            if ip is None:
                continue
            if ip in seen:
                err(path, f"{ip} is listed twice in group {name!r}")
                continue
            seen.add(ip)
            member_key = f"{owner_text}/{name}/{ip}"
            check, probe = _check_of(err, mpath(name, i), gpath(name), base, m, group, model, checks or {})
            address, rd = _shared(compiler, ip)
            members.append(
                Member(
                    member_key,
                    address,
                    ip.version,
                    m.weight,
                    sys.intern(m.status),  # up, down or drain: one string each for every member
                    rd,
                    stable_hash(member_key),
                    check,
                    probe,
                )
            )
        location = None
        if group.location is not None:
            loc = group.location
            if len(loc) != 2 or not (-90 <= loc[0] <= 90 and -180 <= loc[1] <= 180):
                err(gpath(name) + ("location",), "location is [latitude, longitude] in degrees")
            else:
                location = (loc[0], loc[1])
        groups.append(
            Group(name, tuple(members), group.weight, location, stable_hash(f"{owner_text}/{name}"))
        )

    rules = _rules(compiler, base, model, groups, geoip, known_strategy=registered is not None)
    fallback = _fallback(err, base, model)
    families = {m.family for g in groups for m in g.members}
    for i, ip in enumerate(fallback if len(compiler.errors) == before else ()):
        if ip.version not in families:
            # A family the pool lacks answers NODATA before when_all_down is consulted.
            where = base + ("fallback", i) if isinstance(model.fallback, list) else base + ("fallback",)
            err(where, f"{ip} is never used: the pool has no IPv{ip.version} members to be down")
    if len(compiler.errors) > before:
        return None
    return Pool(
        name=owner_text,
        owner=owner,
        ttl=model.ttl,
        strategy=sys.intern(model.strategy),  # a registered name, shared by every pool
        groups=tuple(groups),
        sticky=model.sticky,
        answers=model.answers,
        rules=tuple(rules),
        when_all_down=sys.intern(model.when_all_down),
        fallback=tuple(_rdata(ip) for ip in fallback),
        fallback_families=tuple(ip.version for ip in fallback),
        tolerance_ms=model.tolerance_ms,
        tolerance_percent=model.tolerance_percent,
        families=_FAMILIES.get(frozenset(families), frozenset(families)),
        degraded_ttl=model.degraded_ttl,
    )


def _check_of(err, mpath: Path, gpath: Path, base: Path, member, group, pool, checks: dict):
    """The member's check: its own, else its group's, else the pool's ("none" stops it).

    `checks` maps each name under `checks:` to its Check, or to None when that check has
    errors of its own (already reported: calling it unknown too would mislead)."""
    for path, level in ((mpath, member), (gpath, group), (base, pool)):
        name = level.check
        if name is None:
            continue
        if name == "none":
            break
        if name not in checks:
            known = ", ".join(sorted(checks)) or "none defined under 'checks:'"
            hint = difflib.get_close_matches(name, list(checks), n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else f" (checks: {known})"
            err(path + ("check",), f"unknown check {name!r}{more}")
            return None, None
        if checks[name] is None:
            return None, None
        probe = None
        if member.probe is not None:
            ip = _address(err, mpath + ("probe",), member.probe)
            probe = str(ip) if ip is not None else None
        return checks[name], probe
    if member.probe is not None:
        err(mpath + ("probe",), "'probe' needs a check (on the member, its group or the pool)", key=True)
    return None, None


def _address(err, path: Path, text: Any):
    if not isinstance(text, str):
        err(path, f"expected an IPv4 or IPv6 address, got {describe(text)}")
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        err(path, f"{text!r} is not an IPv4 or IPv6 address")
        return None
    if ip.version == 6 and ip.scope_id:
        err(path, f"{text!r} has a scope id, which DNS cannot carry")
        return None
    return ip


def _rdata(ip):
    return A(str(ip)) if ip.version == 4 else AAAA(str(ip))


def _shared(compiler, ip) -> tuple[str, Any]:
    """A member's address text and rdata, one of each per address in the zone (members of
    many pools often share addresses)."""
    cache = getattr(compiler, "cache", None)
    if cache is None:
        return str(ip), _rdata(ip)
    table = cache.setdefault("pool members", {})
    text = str(ip)
    shared = table.get(text)
    if shared is None:
        shared = table[text] = (text, _rdata(ip))
    return shared


def _fallback(err, base: Path, model: PoolModel) -> list:
    path = base + ("fallback",)
    value = model.fallback
    if value is not None and model.when_all_down != "fallback":
        err(path, "'fallback' is used only with when_all_down: fallback", key=True)
    if value is None or value == []:
        if model.when_all_down == "fallback":
            err(path, "when_all_down: fallback needs a 'fallback' list of addresses")
        return []
    listed = isinstance(value, list)
    out, seen = [], set()
    for i, text in enumerate(value if listed else [value]):
        ip = _address(err, path + (i,) if listed else path, text)
        if ip is None:
            continue
        if ip in seen:
            err(path + (i,), f"{ip} is listed twice in 'fallback'")
            continue
        seen.add(ip)
        out.append(ip)
    return out


def _rules(compiler, base: Path, model: PoolModel, groups, geoip: bool, known_strategy: bool) -> list[Rule]:
    err = compiler.error
    if model.rules is None:
        if model.strategy == "geo":
            err(base, "a geo pool needs 'rules' (the last one a catch-all, e.g. {groups: nearest})")
        return []
    if model.strategy != "geo" and known_strategy:
        err(base + ("rules",), f"'rules' are used only with strategy geo, not {model.strategy!r}", key=True)
        return []
    names = {g.name for g in groups}
    rules = []
    catch_all_at = None
    for i, r in enumerate(model.rules):
        path = base + ("rules", i)
        if catch_all_at is not None:
            err(path, f"unreachable: rule {catch_all_at} before it is a catch-all")
            continue
        given = [c for c in _CONDITIONS if c in r.model_fields_set]
        for c in given:
            if not getattr(r, c):
                err(path + (c,), f"an empty '{c}' list matches no client; leave it out for a catch-all")
        subnets = []
        for j, text in enumerate(r.subnets):
            try:
                subnets.append(ipaddress.ip_network(text))
            except ValueError as exc:
                err(path + ("subnets", j), f"{text!r} is not a network: {exc}")
        for j, code in enumerate(r.countries):
            if not _COUNTRY.match(code):
                err(
                    path + ("countries", j),
                    f"{code!r} is not an ISO 3166 country code (two capitals, e.g. DE)",
                )
        for j, code in enumerate(r.continents):
            if code not in CONTINENTS:
                err(
                    path + ("continents", j),
                    f"{code!r} is not a continent code ({', '.join(sorted(CONTINENTS))})",
                )
        rule_groups = _rule_groups(err, path + ("groups",), r.groups, names, groups)
        if (r.countries or r.continents or r.groups == "nearest") and not geoip:
            what = "countries" if r.countries else "continents" if r.continents else "groups"
            err(path + (what,), "this rule needs a GeoIP database, and none is configured (--geoip-db)")
        if not given:
            catch_all_at = i
        rules.append(Rule(i, tuple(subnets), frozenset(r.countries), frozenset(r.continents), rule_groups))
    if model.rules and catch_all_at is None:
        err(base + ("rules",), "the last rule must be a catch-all (a rule with only 'groups')")
    if not model.rules:
        err(base + ("rules",), "a geo pool needs at least one rule")
    return rules


def _rule_groups(err, path: Path, value: Any, names: set[str], groups) -> tuple[str, ...]:
    """A rule's `groups`: names of the pool's groups in preference, or "nearest" (empty tuple)."""
    if value == "nearest":
        if not any(g.location for g in groups):
            err(path, "'nearest' needs a 'location' on the pool's groups, and none has one")
        return ()
    if not isinstance(value, list):
        hint = f" (a single group is written [{value}])" if isinstance(value, str) else ""
        err(path, f"'groups' is a list of group names or 'nearest', got {describe(value)}{hint}")
        return ()
    if not value:
        err(path, "list at least one group, or say 'nearest'")
    listed: set[str] = set()
    for j, name in enumerate(value):
        if not isinstance(name, str):
            err(path + (j,), f"expected a group name, got {describe(name)}")
            continue
        if name not in names:
            err(path + (j,), f"unknown group {name!r} (groups: {', '.join(sorted(names))})")
        elif name in listed:
            err(path + (j,), f"group {name!r} is listed twice")
        listed.add(name)
    return tuple(value)


def _unknown_strategy(name: str) -> str:
    hint = difflib.get_close_matches(name, list(STRATEGIES), n=1)
    if hint:
        return f"unknown strategy {name!r} (did you mean {hint[0]!r}?)"
    return f"unknown strategy {name!r} (expected one of: {', '.join(sorted(STRATEGIES))})"


# -- did-you-mean for keys inside members, groups and rules ----------------------------------
# model.validate() only finds the known keys of a model's direct fields, so an unknown key in
# a member (`adress`) would get no hint. This walks list/dict/optional annotations as well.


def _with_hints(errors: list[ZoneError], base: Path) -> list[ZoneError]:
    out = []
    for e in errors:
        if e.message == f"unknown key {e.path[-1]!r}":
            known = _known_keys(e.path[len(base) : -1])
            if known:
                e = dataclasses.replace(e, message=unknown_key_message(str(e.path[-1]), known))
        out.append(e)
    return out


def _known_keys(parts: Path) -> list[str]:
    ann: Any = PoolModel
    for part in parts:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            ann = field.annotation
        elif typing.get_origin(ann) in (list, dict):
            ann = typing.get_args(ann)[-1]
        else:
            return []
    ann = _unwrap(ann)
    return list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []


def _unwrap(ann: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` -> X."""
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann
            ann = args[0]
        else:
            return ann
