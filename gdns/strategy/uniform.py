"""random: the first usable group (in the order written); a uniform choice of its members."""

from gdns.strategy import Order, register


@register("random", picker="random", sticky_allowed=False, fixed_order=True)
def order(pool, usable, client) -> Order:
    return Order(usable, 0, "groups in the order written; members chosen uniformly")
