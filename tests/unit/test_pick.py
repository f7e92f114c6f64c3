"""gdns.strategy.pick: weighted sampling, weighted rendezvous hashing, rotation."""

import ipaddress
import random
from collections import Counter

import pytest

from gdns.strategy.pick import mix64, rendezvous, rotate, unit, weighted_sample
from gdns.zone.pool import stable_hash

# Chi-squared critical values at p = 0.001 by degrees of freedom (standard tables, e.g.
# NIST/SEMATECH e-Handbook 1.3.6.7.4): a correct sampler fails one test in a thousand, and
# every random stream below is seeded, so the tests are deterministic as well.
CHI2_CRITICAL_001 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458}


def chi2(counts: Counter, weights: dict) -> float:
    total = sum(counts.values())
    whole = sum(weights.values())
    return sum((counts[k] - total * w / whole) ** 2 / (total * w / whole) for k, w in weights.items())


def networks(n: int) -> list[bytes]:
    """n distinct /24 client networks as sticky hashing keys (10.0.0.0/8, no traffic is sent)."""
    out = []
    for i in range(n):
        net = ipaddress.ip_network((f"10.{i >> 8 & 255}.{i & 255}.0", 24))
        out.append(net.network_address.packed + bytes([24]))
    return out


ITEMS = {"a": 5.0, "b": 3.0, "c": 1.5, "d": 0.5}
SEEDS = {k: stable_hash(f"pool/{k}") for k in ITEMS}


def pick_sticky(network: bytes, n: int = 1, items=tuple(ITEMS)) -> list[str]:
    return rendezvous(list(items), n, network, ITEMS.__getitem__, SEEDS.__getitem__)


# -- building blocks ------------------------------------------------------------------------


def test_unit_is_strictly_inside_0_1():
    values = [unit(x) for x in (0, 1, (1 << 64) - 1, 1 << 63)] + [unit(mix64(i)) for i in range(2000)]
    assert all(0.0 < v < 1.0 for v in values)
    assert unit(0) < 1e-15 and 1 - unit((1 << 64) - 1) < 1e-15


def test_mix64_spreads_consecutive_inputs_evenly():
    """Ten equal bins of unit(mix64(i)) for consecutive i: chi-squared against uniform."""
    counts = Counter(int(unit(mix64(i)) * 10) for i in range(20000))
    assert chi2(counts, dict.fromkeys(range(10), 1)) < 27.877  # df 9, p = 0.001


def test_stable_hash_is_fixed_across_processes():
    # blake2b, not Python's salted hash(): every instance hashes a client network alike.
    # The blake2b-64 digests (hashlib.blake2b(b"", digest_size=8)), pinned.
    assert stable_hash("") == 0xE4A6A0577479B2B4
    assert stable_hash("gdns") == 0x7950E28EBB0B67F8
    assert stable_hash("a") != stable_hash("b")
    assert 0 <= stable_hash("x") < 1 << 64


# -- weighted sampling (non-sticky) -------------------------------------------------------


def test_weighted_sample_one_follows_weights():
    rng = random.Random(1)
    counts = Counter(weighted_sample(list(ITEMS), 1, ITEMS.__getitem__, rng)[0] for _ in range(20000))
    assert chi2(counts, ITEMS) < CHI2_CRITICAL_001[3]


def test_weighted_sample_first_of_several_follows_weights():
    """Efraimidis-Spirakis: the first of n distinct draws is in proportion to the weights."""
    rng = random.Random(2)
    counts = Counter()
    for _ in range(20000):
        drawn = weighted_sample(list(ITEMS), 3, ITEMS.__getitem__, rng)
        assert len(set(drawn)) == 3
        counts[drawn[0]] += 1
    assert chi2(counts, ITEMS) < CHI2_CRITICAL_001[3]


def test_the_chi_squared_check_can_fail():
    """The statistic does reject a wrong distribution: uniform draws against 5:3:1.5:0.5."""
    rng = random.Random(3)
    counts = Counter(rng.choice(list(ITEMS)) for _ in range(20000))
    assert chi2(counts, ITEMS) > 100 * CHI2_CRITICAL_001[3]


def test_weighted_sample_all_returns_a_permutation():
    rng = random.Random(4)
    for _ in range(100):
        assert sorted(weighted_sample(list(ITEMS), 4, ITEMS.__getitem__, rng)) == sorted(ITEMS)
    assert weighted_sample(["x"], 1, lambda _: 1.0, rng) == ["x"]


# -- weighted rendezvous hashing (sticky) ---------------------------------------------------


def test_rendezvous_shares_follow_weights_over_10000_networks():
    counts = Counter(pick_sticky(net)[0] for net in networks(10000))
    assert chi2(counts, ITEMS) < CHI2_CRITICAL_001[3]


def test_rendezvous_is_a_pure_function_of_network_and_items():
    nets = networks(500)
    first = [pick_sticky(net, 2) for net in nets]
    assert [pick_sticky(net, 2) for net in nets] == first
    # The order the items are listed in does not matter, only which ones there are.
    assert [pick_sticky(net, 2, tuple(reversed(ITEMS))) for net in nets] == first
    assert len({tuple(p) for p in first}) > 4  # it does depend on the network


def test_rendezvous_n_gives_distinct_items_and_a_prefix_of_the_full_ranking():
    for net in networks(300):
        full = pick_sticky(net, 4)
        assert sorted(full) == sorted(ITEMS)
        assert pick_sticky(net, 2) == full[:2]
        assert pick_sticky(net, 9) == full  # more than there are: all of them


def test_rendezvous_removal_moves_only_the_removed_items_networks():
    nets = networks(5000)
    before = {net: pick_sticky(net)[0] for net in nets}
    after = {net: pick_sticky(net, items=("a", "c", "d"))[0] for net in nets}
    moved = {net for net in nets if before[net] != after[net]}
    assert moved == {net for net in nets if before[net] == "b"}
    assert moved  # "b" had clients to move
    # Those that moved are spread over the rest by weight (a:c:d = 5:1.5:0.5).
    counts = Counter(after[net] for net in moved)
    assert chi2(counts, {"a": 5.0, "c": 1.5, "d": 0.5}) < CHI2_CRITICAL_001[2]


def test_rendezvous_second_choice_is_the_fallback_when_first_leaves():
    for net in networks(300):
        first, second = pick_sticky(net, 2)
        rest = tuple(k for k in ITEMS if k != first)
        assert pick_sticky(net, items=rest) == [second]


@pytest.mark.parametrize("n,turns", [(1, 4), (2, 4), (3, 3)])
def test_rotate(n, turns):
    items = ["a", "b", "c"]
    got = [rotate(items, n, turn) for turn in range(turns)]
    expected = [(items[t % 3 :] + items[: t % 3])[:n] for t in range(turns)]
    assert got == expected
    assert rotate(items, 2, 0) == ["a", "b"] and rotate(items, 2, 1) == ["b", "c"]
    assert rotate(items, 2, 2) == ["c", "a"] and rotate(items, 1, 3) == ["a"]
