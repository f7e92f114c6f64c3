"""weighted: groups are ordered by their weights (at random, or by rendezvous hash when the
pool is sticky); members inside the chosen group are picked by their weights."""

import random

from gdns.strategy import Order, register
from gdns.strategy.pick import rendezvous, weighted_sample

_rng = random.Random()


@register("weighted")
def order(pool, usable, client) -> Order:
    if len(usable) <= 1:
        return Order(usable, 0, "one usable group")
    if pool.sticky:
        network, prefix = client.sticky_network()
        ranked = rendezvous(usable, len(usable), network, lambda g: g.weight, lambda g: g.seed)
        return Order(tuple(ranked), prefix, f"groups by weight, sticky on the client's /{prefix}")
    ranked = weighted_sample(usable, len(usable), lambda g: g.weight, _rng)
    return Order(tuple(ranked), 0, "groups drawn by weight")
