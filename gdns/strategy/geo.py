"""geo: the first rule that matches the client orders the groups.

A rule matches when any of its conditions does: the client's address is in one of its
`subnets`, or GeoIP places it in one of its `countries` or `continents`; a rule with no
condition is the catch-all. `groups: nearest` orders the groups by great-circle distance
from the client's GeoIP location. Groups a rule does not list follow the listed ones (in
the order written) as a last resort, so a client is never refused while any member is up.

The ECS scope is the widest network over which this decision cannot change: the matched
subnet's prefix, the GeoIP network's prefix when GeoIP was consulted, and long enough to
exclude every subnet of an earlier rule the client did not match.
"""

from __future__ import annotations

from gdns.geo import distance_km
from gdns.strategy import Order, register


def _excluding(address, network) -> int:
    """The prefix length around `address` that no longer overlaps `network`."""
    if network.version != address.version:
        return 0
    diff = int(address) ^ int(network.network_address)
    common = address.max_prefixlen - diff.bit_length()  # leading bits shared with the network
    return min(common + 1, address.max_prefixlen)


@register("geo")
def order(pool, usable, client) -> Order:
    address = client.address
    scope = 0
    for rule in pool.rules:
        matched = None
        for net in rule.subnets:
            if net.version == address.version and address in net:
                matched = f"subnet {net}"
                scope = max(scope, net.prefixlen)
                break
            scope = max(scope, _excluding(address, net))
        if matched is None and (rule.countries or rule.continents):
            where = client.location()
            if where is not None:
                scope = max(scope, where.prefix)
                if where.country in rule.countries:
                    matched = f"country {where.country}"
                elif where.continent in rule.continents:
                    matched = f"continent {where.continent}"
        if matched is None and rule.catch_all:
            matched = "catch-all"
        if matched is None:
            continue
        if rule.groups:
            ranked = _listed_first(usable, rule.groups)
            why = f"rule {rule.index} ({matched}): groups {', '.join(rule.groups)}"
        else:
            ranked, why, scope = _nearest(usable, client, scope)
            why = f"rule {rule.index} ({matched}): {why}"
        return Order(ranked, scope, why, rule=rule.index)
    return Order(usable, scope, "no rule matched: groups in the order written")


def _listed_first(usable, names):
    by_name = {g.name: g for g in usable}
    listed = [by_name[n] for n in names if n in by_name]
    return tuple(listed + [g for g in usable if g.name not in names])


def _nearest(usable, client, scope):
    where = client.location()
    if where is not None:
        scope = max(scope, where.prefix)
    point = where.point if where else None
    if point is None:
        return usable, "nearest: client location unknown, groups in the order written", scope
    located = sorted((distance_km(point, g.location), i, g) for i, g in enumerate(usable) if g.location)
    others = [g for g in usable if not g.location]
    ranked = tuple(g for _, _, g in located) + tuple(others)
    km = ", ".join(f"{g.name} {d:.0f} km" for d, _, g in located)
    return ranked, f"nearest to ({point[0]:.2f}, {point[1]:.2f}): {km}", scope
