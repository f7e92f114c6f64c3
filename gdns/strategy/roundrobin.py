"""roundrobin: the first usable group (in the order written); its healthy members are
answered in rotation, query after query. Resolvers cache and reorder answers, so this
spreads load only roughly; the weighted strategies are the ones that control shares."""

from gdns.strategy import Order, register


@register("roundrobin", picker="roundrobin", sticky_allowed=False, fixed_order=True)
def order(pool, usable, client) -> Order:
    return Order(usable, 0, "groups in the order written; members in rotation")
