"""Loading a folder of zone files into a ZoneSet, validated whole."""

import time
from pathlib import Path

import pytest

from gdns.zone.errors import ZoneError, ZoneLoadError
from gdns.zone.loader import fingerprint, load_folder, load_zones, zone_files

ROOT = Path(__file__).resolve().parents[2]


def zone_text(origin: str = "example.com.", extra: str = "") -> str:
    return (
        f"origin: {origin}\n"
        "soa: {mname: ns1.example.net., rname: hostmaster.example.net.}\n"
        "ns: [ns1.example.net.]\n"
        "records:\n"
        "  www: {A: 192.0.2.10}\n" + extra
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def load_errors(folder: Path) -> list[ZoneError]:
    with pytest.raises(ZoneLoadError) as info:
        load_folder(folder)
    return info.value.errors


def test_shipped_example_zone_loads():
    zones = load_folder(ROOT / "zones")
    assert len(zones) == 1
    zone = zones.find((b"www", b"gslb", b"example", b"com"))
    assert zone is not None
    assert zone.origin == (b"gslb", b"example", b"com")


def test_test_data_zone_loads():
    zones = load_folder(ROOT / "tests" / "data")
    zone = zones.find((b"host", b"test", b"example"))
    assert zone is not None
    assert zone.negative_ttl == 120  # min(SOA ttl 600, minimum 120)


def test_folder_with_several_zones(tmp_path):
    write(tmp_path, "a.yaml", zone_text("example.com."))
    write(tmp_path, "b.yml", zone_text("example.org."))
    write(tmp_path, "sub.yaml", zone_text("sub.example.com."))
    zones = load_folder(tmp_path)
    assert len(zones) == 3
    assert zones.find((b"www", b"sub", b"example", b"com")).file == str(tmp_path / "sub.yaml")
    assert zones.find((b"www", b"example", b"com")).file == str(tmp_path / "a.yaml")
    assert zones.find((b"www", b"example", b"net")) is None


def test_zone_files_skips_hidden_and_other_files(tmp_path):
    for name in ("b.yaml", "a.yml", ".hidden.yaml", "notes.txt", "c.yaml.bak"):
        write(tmp_path, name, "")
    (tmp_path / "..data").mkdir()
    write(tmp_path / "..data", "d.yaml", "")
    assert [p.name for p in zone_files(tmp_path)] == ["a.yml", "b.yaml"]


def test_missing_folder(tmp_path):
    [error] = load_errors(tmp_path / "nothere")
    assert "does not exist" in error.message


def test_folder_without_zone_files(tmp_path):
    write(tmp_path, "readme.txt", "")
    [error] = load_errors(tmp_path)
    assert "no zone files" in error.message


def test_duplicate_zones_are_an_error_at_the_second_origin(tmp_path):
    write(tmp_path, "a.yaml", zone_text("example.com."))
    write(tmp_path, "b.yaml", "# the same zone again\n" + zone_text("Example.COM."))
    [error] = load_errors(tmp_path)
    assert str(error) == (
        f"{tmp_path / 'b.yaml'}:2:9: origin: zone Example.COM. is also defined in {tmp_path / 'a.yaml'}"
    )


def test_errors_from_every_file_are_reported_together_and_sorted(tmp_path):
    write(tmp_path, "a.yaml", zone_text(extra="  bad: {A: 192.0.2.300}\n  worse: {AAAA: nope}\n"))
    write(tmp_path, "b.yaml", zone_text("example.org.", extra="  x: {CNAME: no-dot.example.org}\n"))
    write(tmp_path, "c.yaml", zone_text("other.example."))
    errors = load_errors(tmp_path)
    assert [(Path(e.file).name, e.line, e.column) for e in errors] == [
        ("a.yaml", 6, 12),
        ("a.yaml", 7, 17),
        ("b.yaml", 6, 14),
    ]


def test_load_error_message_lists_every_problem(tmp_path):
    write(tmp_path, "a.yaml", zone_text(extra="  bad: {A: 192.0.2.300}\n  worse: {AAAA: nope}\n"))
    with pytest.raises(ZoneLoadError) as info:
        load_folder(tmp_path)
    lines = str(info.value).splitlines()
    assert lines == [str(e) for e in info.value.errors]
    assert len(lines) == 2


def test_yaml_syntax_error_is_positioned(tmp_path):
    write(tmp_path, "a.yaml", "origin: example.com.\nrecords: {www: [192.0.2.1}\n")
    [error] = load_errors(tmp_path)
    assert (error.line, error.column) == (2, 26)
    assert error.message.startswith("YAML syntax")


def test_duplicate_key_in_a_file(tmp_path):
    write(tmp_path, "a.yaml", zone_text() + "  www: {A: 192.0.2.11}\n")
    [error] = load_errors(tmp_path)
    assert (
        str(error) == f"{tmp_path / 'a.yaml'}:6:3: records.www: duplicate key 'www' (first defined at line 5)"
    )


def test_empty_zone_file(tmp_path):
    write(tmp_path, "a.yaml", "# nothing yet\n")
    [error] = load_errors(tmp_path)
    assert (error.line, error.column, error.message) == (1, 1, "empty zone file")


def test_file_that_is_not_utf8(tmp_path):
    (tmp_path / "a.yaml").write_bytes(b"origin: caf\xe9.example.\n")
    [error] = load_errors(tmp_path)
    assert "not UTF-8" in error.message


def test_one_bad_file_fails_the_whole_set(tmp_path):
    write(tmp_path, "a.yaml", zone_text("example.com."))
    write(tmp_path, "b.yaml", zone_text("example.org.", extra="  x: {A: nope}\n"))
    errors = load_errors(tmp_path)
    assert {Path(e.file).name for e in errors} == {"b.yaml"}


def test_load_zones_takes_explicit_files(tmp_path):
    a = write(tmp_path, "a.zone", zone_text())
    assert len(load_zones([a])) == 1


def test_serial_ignores_comments_and_spacing_but_the_digest_does_not(tmp_path):
    plain = write(tmp_path, "plain.yaml", zone_text())
    commented = write(tmp_path, "commented.yaml", "# a comment\n" + zone_text().replace("{A: ", "{A:   "))
    a = load_zones([plain]).zones[(b"example", b"com")]
    b = load_zones([commented]).zones[(b"example", b"com")]
    assert a.serial == b.serial
    assert a.digest != b.digest


def test_serial_changes_with_the_content_of_the_file(tmp_path):
    path = write(tmp_path, "a.yaml", zone_text())
    before = load_zones([path]).zones[(b"example", b"com")].serial
    path.write_text(zone_text().replace("192.0.2.10", "192.0.2.11"))
    assert load_zones([path]).zones[(b"example", b"com")].serial != before


def test_fingerprint_follows_changes(tmp_path):
    path = write(tmp_path, "a.yaml", zone_text())
    before = fingerprint(tmp_path)
    assert before == fingerprint(tmp_path)
    path.write_text(zone_text(extra="  more: {A: 192.0.2.20}\n"))
    assert fingerprint(tmp_path) != before


def test_fingerprint_of_missing_folder_is_none(tmp_path):
    assert fingerprint(tmp_path / "nothere") is None


def test_a_file_named_twice_is_loaded_once(tmp_path):
    path = write(tmp_path, "a.yaml", zone_text())
    assert len(load_zones([path, tmp_path / "." / "a.yaml"])) == 1


def test_fingerprint_sees_a_dangling_symlink_and_a_mode_change(tmp_path):
    """Both make a file unreadable without touching its content: a reload must report them."""
    write(tmp_path, "a.yaml", zone_text())
    before = fingerprint(tmp_path)
    (tmp_path / "b.yaml").symlink_to(tmp_path / "nowhere.yaml")
    dangling = fingerprint(tmp_path)
    assert dangling != before and [entry[0] for entry in dangling] == ["a.yaml", "b.yaml"]
    (tmp_path / "b.yaml").unlink()
    assert fingerprint(tmp_path) == before
    time.sleep(0.01)  # a ctime a coarse clock can tell apart
    (tmp_path / "a.yaml").chmod(0o200)
    assert fingerprint(tmp_path) != before
