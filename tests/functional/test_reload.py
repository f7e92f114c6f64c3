"""Zone reloads: changes are picked up, broken changes keep the last good zones, and no
query in flight during a reload goes unanswered."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.conftest import wait_for

ZONE = """\
origin: reload.example.
ttl: 30
soa: {{mname: ns1.reload.example., rname: hostmaster.reload.example.}}
ns: [ns1.reload.example.]
records:
  ns1: {{A: 192.0.2.1}}
  www: {{A: {address}}}
"""


def write_zone(folder: Path, address: str, name: str = "reload.yaml") -> None:
    """Write the way careful tools do: a temporary file renamed over the old one."""
    tmp = folder / f".{name}.tmp"
    tmp.write_text(ZONE.format(address=address))
    os.replace(tmp, folder / name)


def address_of(server, qname: str = "www.reload.example") -> str | None:
    reply = server.query(qname)
    if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
        return None
    return reply.answer[0][0].address


def serial_of(server) -> int:
    return server.query("reload.example", "SOA").answer[0][0].serial


def test_changed_file_is_picked_up_and_serial_changes(tmp_path, start_server):
    write_zone(tmp_path, "192.0.2.10")
    server = start_server(tmp_path, "--reload-interval", "0.2")
    before = serial_of(server)
    write_zone(tmp_path, "192.0.2.11")
    assert wait_for(lambda: address_of(server) == "192.0.2.11")
    assert serial_of(server) != before
    assert server.wait_for_log("zones reloaded")


def test_broken_change_keeps_last_good_zones_and_logs_file_and_line(tmp_path, start_server):
    write_zone(tmp_path, "192.0.2.10")
    server = start_server(tmp_path, "--reload-interval", "0.2")
    mark = len(server.lines)
    write_zone(tmp_path, "192.0.2.999")
    assert server.wait_for_log(f"{tmp_path / 'reload.yaml'}:7:", start=mark)
    assert server.wait_for_log("still serving the previous zones", start=mark)
    assert address_of(server) == "192.0.2.10"
    write_zone(tmp_path, "192.0.2.12")  # fixing it brings the new data in
    assert wait_for(lambda: address_of(server) == "192.0.2.12")


def test_one_broken_file_blocks_the_whole_change(tmp_path, start_server):
    """The set is validated whole: a good edit beside a broken file waits for the fix."""
    write_zone(tmp_path, "192.0.2.10")
    server = start_server(tmp_path, "--reload-interval", "0.2")
    mark = len(server.lines)
    (tmp_path / "other.yaml").write_text("origin: other.example.\nsoa: [\n")
    write_zone(tmp_path, "192.0.2.13")
    assert server.wait_for_log("other.yaml:", start=mark)
    assert address_of(server) == "192.0.2.10"


def test_sighup_reloads_when_polling_is_off(tmp_path, start_server):
    write_zone(tmp_path, "192.0.2.10")
    server = start_server(tmp_path, "--reload-interval", "0")
    write_zone(tmp_path, "192.0.2.14")
    time.sleep(0.5)
    assert address_of(server) == "192.0.2.10"  # no polling: nothing changes by itself
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: address_of(server) == "192.0.2.14")
    assert server.wait_for_log("zones reloaded (SIGHUP)")


def test_zone_files_added_and_removed(tmp_path, start_server):
    write_zone(tmp_path, "192.0.2.10")
    server = start_server(tmp_path, "--reload-interval", "0.2")
    second = ZONE.replace("reload.example.", "second.example.").format(address="192.0.2.20")
    (tmp_path / "second.yaml").write_text(second)
    assert wait_for(lambda: address_of(server, "www.second.example") == "192.0.2.20")
    (tmp_path / "second.yaml").unlink()
    assert wait_for(lambda: server.query("www.second.example").rcode() == dns.rcode.REFUSED)
    assert address_of(server) == "192.0.2.10"


def test_emptied_folder_keeps_serving(tmp_path, start_server):
    write_zone(tmp_path, "192.0.2.10")
    server = start_server(tmp_path, "--reload-interval", "0.2")
    mark = len(server.lines)
    (tmp_path / "reload.yaml").unlink()
    assert server.wait_for_log("no zone files", start=mark)
    assert address_of(server) == "192.0.2.10"


def test_kubernetes_configmap_symlink_swap(tmp_path, start_server):
    """A ConfigMap volume: files are symlinks through `..data`, which is swapped atomically."""

    def publish(version: str, address: str) -> None:
        data = tmp_path / f"..{version}"
        data.mkdir()
        write_zone(data, address)
        (tmp_path / "..data_tmp").symlink_to(data.name)
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    publish("2026_11_24_v1", "192.0.2.10")
    (tmp_path / "reload.yaml").symlink_to("..data/reload.yaml")
    server = start_server(tmp_path, "--reload-interval", "0.2")
    assert address_of(server) == "192.0.2.10"
    publish("2026_11_24_v2", "192.0.2.15")
    assert wait_for(lambda: address_of(server) == "192.0.2.15")


def test_queries_in_flight_during_reloads_are_all_answered(tmp_path, start_server):
    write_zone(tmp_path, "192.0.2.10")
    server = start_server(tmp_path, "--reload-interval", "0.05")
    results: list[str | None] = []
    failures: list[str] = []
    stop = threading.Event()

    def load(tcp: bool) -> None:
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            query = dns.message.make_query("www.reload.example", "A")
            try:
                if tcp:
                    reply = dns.query.tcp(query, server.host, port=server.port, timeout=2)
                else:
                    reply = dns.query.udp(query, server.host, port=server.port, timeout=2)
            except dns.exception.Timeout:
                failures.append("timeout")
                continue
            if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
                failures.append(dns.rcode.to_text(reply.rcode()))
                continue
            results.append(reply.answer[0][0].address)

    threads = [threading.Thread(target=load, args=(tcp,)) for tcp in (False, True)]
    for thread in threads:
        thread.start()
    reloads = 0
    for i in range(12):
        write_zone(tmp_path, f"192.0.2.{20 + i}")
        if wait_for(lambda i=i: address_of(server) == f"192.0.2.{20 + i}", timeout=5):
            reloads += 1
    stop.set()
    for thread in threads:
        thread.join(25)
    assert reloads == 12
    assert failures == []
    assert len(results) > 100
    assert set(results) <= {"192.0.2.10"} | {f"192.0.2.{20 + i}" for i in range(12)}
