"""What crosses a worker's control channel (gdns.workers): zone sets in pieces and health
snapshots as plain data come out equal to what went in, with the same sharing of pools."""

from __future__ import annotations

import pickle
from types import MappingProxyType

import pytest

from gdns import workers
from gdns.health.snapshot import HealthSnapshot, MemberHealth
from gdns.zone.loader import load_zones, zone_files
from tests.conftest import EXAMPLE_ZONES, ROOT


def split(frame: bytes) -> tuple[int, bytes]:
    size, kind = workers._FRAME.unpack_from(frame)
    body = frame[workers._FRAME.size :]
    assert len(body) == size
    return kind, body


def transfer(zones):
    frames = [split(f) for f in workers.zone_frames(zones)]
    kind, body = frames[0]
    assert kind == workers.ZONES
    intake = workers.ZoneIntake(pickle.loads(body))
    for kind, body in frames[1:]:
        assert kind in (workers.ZONE, workers.POOLS, workers.NODES)
        intake.take(kind, body)
    return intake.finish(), frames


@pytest.fixture
def zones():
    files = zone_files(EXAMPLE_ZONES) + zone_files(ROOT / "tests" / "data")
    return load_zones(files)


def test_a_zone_set_arrives_whole_in_small_pieces(zones, monkeypatch):
    monkeypatch.setattr(workers, "NODES_PER_FRAME", 3)
    monkeypatch.setattr(workers, "POOLS_PER_FRAME", 2)
    copy, frames = transfer(zones)
    assert sum(1 for kind, _ in frames if kind == workers.NODES) > len(zones)  # really in pieces
    assert copy == zones
    assert list(copy.zones) == list(zones.zones)
    pools = 0
    for key, zone in copy.zones.items():
        assert list(zone.nodes) == list(zones.zones[key].nodes)
        for name, node in zone.nodes.items():
            if node.pool is not None:
                assert node.pool is zone.pools[name]  # one object, as in the instance
                pools += 1
    assert pools >= 5


def test_health_snapshots_cross_as_plain_data_and_reuse_unchanged_members():
    first = HealthSnapshot(
        MappingProxyType({"a": MemberHealth("up", 0.01, "status 200", 1.0), "b": MemberHealth("drain")}), 7
    )
    intake = workers.HealthIntake()
    got = intake.snapshot(pickle.loads(pickle.dumps(workers.health_message(first))))
    assert got.version == 7 and dict(got.members) == dict(first.members)
    second = HealthSnapshot(
        MappingProxyType({**first.members, "b": MemberHealth("down", None, "timeout")}), 8
    )
    again = intake.snapshot(pickle.loads(pickle.dumps(workers.health_message(second))))
    assert again.version == 8 and dict(again.members) == dict(second.members)
    assert again.members["a"] is got.members["a"]  # unchanged: not rebuilt
    assert isinstance(again.members, MappingProxyType)
