"""The `pools:` section of a zone file: shape (pydantic) and meaning, compiled to Pools."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from dnslib import AAAA, A, DNSLabel
from pydantic import Field

from gdns.strategy import STRATEGIES
from gdns.zone.errors import Path
from gdns.zone.model import Seconds, Strict, validate
from gdns.zone.pool import Group, Member, Pool, Rule, stable_hash

Weight = Annotated[float, Field(gt=0, le=1_000_000)]
CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class MemberModel(Strict):
    address: str
    weight: Weight = 1
    status: Literal["up", "down", "drain"] = "up"


class GroupModel(Strict):
    members: Annotated[list[MemberModel], Field(min_length=1)]
    weight: Weight = 1
    location: list[float] | None = None


class RuleModel(Strict):
    subnets: list[str] = []
    countries: list[str] = []
    continents: list[str] = []
    groups: list[str] | Literal["nearest"]


class PoolModel(Strict):
    ttl: Seconds = 30
    strategy: str = "weighted"
    sticky: bool = False
    answers: Annotated[int, Field(ge=1, le=32)] = 1
    groups: dict[str, GroupModel] | None = None
    members: list[MemberModel] | None = None  # shorthand for one group named "default"
    rules: list[RuleModel] | None = None
    when_all_down: Literal["all", "fallback", "nodata", "servfail"] = "all"
    fallback: list[str] | str | None = None
    tolerance_ms: Annotated[float, Field(ge=0)] = 5.0
    tolerance_percent: Annotated[float, Field(ge=0)] = 10.0


def compile_pool(compiler, key: str, data: Any, owner: DNSLabel, geoip: bool) -> Pool | None:
    """One pool; errors go to `compiler.error` with their paths."""
    base: Path = ("pools", key)
    model, errors = validate(PoolModel, data, compiler.doc, base)
    compiler.errors.extend(errors)
    if model is None:
        return None
    before = len(compiler.errors)
    err = compiler.error
    registered = STRATEGIES.get(model.strategy)
    if registered is None:
        names = ", ".join(sorted(STRATEGIES))
        err(base + ("strategy",), f"unknown strategy {model.strategy!r} (expected one of: {names})")
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
        members, seen = [], set()
        for i, m in enumerate(group.members):
            path = mpath(name, i)
            try:
                ip = ipaddress.ip_address(m.address)
            except ValueError:
                err(path + ("address",), f"{m.address!r} is not an IPv4 or IPv6 address")
                continue
            if ip in seen:
                err(path + ("address",), f"{ip} is listed twice in group {name!r}")
                continue
            seen.add(ip)
            member_key = f"{owner_text}/{name}/{ip}"
            rd = A(str(ip)) if ip.version == 4 else AAAA(str(ip))
            members.append(
                Member(member_key, str(ip), ip.version, m.weight, m.status, rd, stable_hash(member_key))
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

    rules = _rules(compiler, base, model, {g.name for g in groups}, geoip)
    fallback = []
    if model.fallback is not None:
        values = model.fallback if isinstance(model.fallback, list) else [model.fallback]
        for i, text in enumerate(values):
            path = base + ("fallback", i) if isinstance(model.fallback, list) else base + ("fallback",)
            try:
                fallback.append(ipaddress.ip_address(text))
            except ValueError:
                err(path, f"{text!r} is not an IPv4 or IPv6 address")
    if model.when_all_down == "fallback" and not fallback:
        err(base + ("fallback",), "when_all_down: fallback needs a 'fallback' list of addresses")
    if model.fallback is not None and model.when_all_down != "fallback":
        err(base + ("fallback",), "'fallback' is used only with when_all_down: fallback", key=True)
    if len(compiler.errors) > before:
        return None
    return Pool(
        name=owner_text,
        owner=owner,
        ttl=model.ttl,
        strategy=model.strategy,
        groups=tuple(groups),
        sticky=model.sticky,
        answers=model.answers,
        rules=tuple(rules),
        when_all_down=model.when_all_down,
        fallback=tuple(A(str(ip)) if ip.version == 4 else AAAA(str(ip)) for ip in fallback),
        fallback_families=tuple(ip.version for ip in fallback),
        tolerance_ms=model.tolerance_ms,
        tolerance_percent=model.tolerance_percent,
        families=frozenset(m.family for g in groups for m in g.members),
    )


def _rules(compiler, base: Path, model: PoolModel, names: set[str], geoip: bool) -> list[Rule]:
    err = compiler.error
    if model.rules is None:
        if model.strategy == "geo":
            err(base, "a geo pool needs 'rules' (the last one a catch-all, e.g. {groups: nearest})")
        return []
    if model.strategy != "geo":
        err(base + ("rules",), f"'rules' are used only with strategy geo, not {model.strategy!r}", key=True)
        return []
    rules = []
    catch_all_at = None
    for i, r in enumerate(model.rules):
        path = base + ("rules", i)
        if catch_all_at is not None:
            err(path, f"unreachable: rule {catch_all_at} before it is a catch-all")
            continue
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
        groups: tuple[str, ...] = ()
        if r.groups != "nearest":
            if not r.groups:
                err(path + ("groups",), "list at least one group, or say 'nearest'")
            for j, name in enumerate(r.groups):
                if name not in names:
                    err(path + ("groups", j), f"unknown group {name!r} (groups: {', '.join(sorted(names))})")
            groups = tuple(r.groups)
        rule = Rule(i, tuple(subnets), frozenset(r.countries), frozenset(r.continents), groups)
        if rule.needs_geoip and not geoip:
            what = "countries" if r.countries else "continents" if r.continents else "groups"
            err(path + (what,), "this rule needs a GeoIP database, and none is configured (--geoip-db)")
        if rule.catch_all:
            catch_all_at = i
        rules.append(rule)
    if model.rules and catch_all_at is None:
        err(base + ("rules",), "the last rule must be a catch-all (a rule with only 'groups')")
    if not model.rules:
        err(base + ("rules",), "a geo pool needs at least one rule")
    return rules
