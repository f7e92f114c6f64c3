"""failover: the groups in the order written; the first with healthy members answers."""

from gdns.strategy import Order, register


@register("failover", fixed_order=True)
def order(pool, usable, client) -> Order:
    return Order(usable, 0, "groups in the order written")
