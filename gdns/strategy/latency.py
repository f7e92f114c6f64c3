"""latency: groups ranked by measured round-trip time (the mean of their healthy members'
smoothed RTTs). Groups within the tolerance band of the best one count as equal and keep
the order written, so answers do not flap between near-equal groups. Groups without a
measurement rank last, in the order written."""

from gdns.strategy import Order, register


def group_rtt(group, family: int, health) -> float | None:
    rtts = []
    for member in group.family(family):
        state = health.get(member.key)
        if state.eligible and state.rtt is not None:
            rtts.append(state.rtt)
    return sum(rtts) / len(rtts) if rtts else None


@register("latency", fixed_order=True)
def order(pool, usable, client) -> Order:
    family = client.query_family
    measured = [(group_rtt(g, family, client.health), i, g) for i, g in enumerate(usable)]
    timed = [(rtt, i, g) for rtt, i, g in measured if rtt is not None]
    untimed = [g for rtt, _, g in measured if rtt is None]
    if not timed:
        return Order(tuple(untimed), 0, "no round-trip times measured: groups in the order written")
    best = min(rtt for rtt, _, _ in timed)
    limit = best * (1 + pool.tolerance_percent / 100) + pool.tolerance_ms / 1000
    band = [g for rtt, i, g in sorted(timed, key=lambda t: t[1]) if rtt <= limit]
    rest = [g for rtt, i, g in sorted(timed) if rtt > limit]
    rtts = {g.name: rtt for rtt, _, g in timed}
    why = f"lowest round-trip time (best {best * 1000:.1f} ms, band up to {limit * 1000:.1f} ms)"
    return Order(
        tuple(band + rest + untimed), 0, why, details={"rtt_ms": {k: v * 1000 for k, v in rtts.items()}}
    )
