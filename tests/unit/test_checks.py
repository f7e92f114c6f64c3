"""The `checks:` section of a zone and the `check:`/`probe:` keys of pools: compiled Checks,
defaults, durations, inheritance, and errors positioned at file:line:column."""

from __future__ import annotations

import textwrap

import pytest

from gdns.zone.checks import Check
from gdns.zone.compile import compile_zone
from gdns.zone.yamlsafe import load
from tests.poolkit import ZONE_HEAD

HEAD = ZONE_HEAD
CHECKS_LINE = HEAD.count("\n") + 2  # the line of the first check written with `zone_text`
ONE_POOL = "www: {check: web, members: [{address: 192.0.2.10}]}"


def zone_text(checks: str, pools: str = "") -> str:
    checks = textwrap.dedent(checks)
    text = HEAD + "checks:\n" + textwrap.indent(checks if checks.endswith("\n") else checks + "\n", "  ")
    if pools:
        text += "pools:\n" + textwrap.indent(textwrap.dedent(pools), "  ")
    return text


def compile_text(text: str):
    return compile_zone(load(text, "z.yaml"), "digest")


def check_of(body: str) -> Check:
    """The compiled check `web: <body>` as the one pool sees it."""
    zone, errors = compile_text(zone_text(f"web: {body}", ONE_POOL))
    assert errors == [], [str(e) for e in errors]
    (pool,) = zone.pools.values()
    (member,) = pool.members()
    return member.check


def errors_of(checks: str, pools: str = "") -> list[str]:
    zone, errors = compile_text(zone_text(checks, pools))
    assert zone is None
    assert errors
    return [str(e) for e in sorted(errors)]


def one_error(checks: str, pools: str = "") -> str:
    errors = errors_of(checks, pools)
    assert len(errors) == 1, errors
    return errors[0]


# -- compiled checks --------------------------------------------------------------------------


def test_http_defaults():
    check = check_of("{}")
    assert check == Check(
        type="http",
        port=80,
        path="/",
        method="GET",
        host=None,
        expect=frozenset(range(200, 300)),
        body=None,
        body_regex=None,
        headers=(),
        interval=5.0,
        timeout=2.0,
        rise=2,
        fall=3,
        down_interval=10.0,
        verify=True,
        ca=None,
        follow_redirects=False,
    )
    assert check.name == "web"


def test_https_defaults_to_port_443():
    check = check_of("{type: https}")
    assert (check.type, check.port, check.verify) == ("https", 443, True)


def test_tcp_with_a_port():
    check = check_of("{type: tcp, port: 5432, interval: 1, timeout: 0.5, rise: 1, fall: 1}")
    assert (check.type, check.port, check.interval, check.timeout) == ("tcp", 5432, 1.0, 0.5)
    assert (check.rise, check.fall, check.down_interval) == (1, 1, 2.0)


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> str:
    from tests.backends import TLS

    return TLS(tmp_path_factory.mktemp("ca")).ca_file


def test_every_key(ca_file):
    check = check_of(
        f"""{{type: https, port: 8443, path: "/health?deep=1", method: HEAD, host: www.example.com,
        expect: [200, "300-302"], headers: {{X-B: "2", X-A: "1"}}, interval: 10s, timeout: 1500ms,
        rise: 4, fall: 5, down_interval: 1m, verify: true, ca: {ca_file},
        follow_redirects: true}}"""
    )
    assert check == Check(
        type="https",
        port=8443,
        path="/health?deep=1",
        method="HEAD",
        host="www.example.com",
        expect=frozenset({200, 300, 301, 302}),
        headers=(("X-A", "1"), ("X-B", "2")),  # sorted: equal checks are equal however written
        interval=10.0,
        timeout=1.5,
        rise=4,
        fall=5,
        down_interval=60.0,
        verify=True,
        ca=ca_file,
        follow_redirects=True,
    )


def test_a_ca_file_that_probes_could_not_use_is_an_error_at_its_position(tmp_path):
    """Caught when the zones load (and by `gdns check`), not by every probe later."""
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cases = {
        str(tmp_path / "missing.pem"): "cannot read the CA file '{}': No such file or directory",
        str(tmp_path): "cannot read the CA file '{}': Is a directory",
        str(tmp_path / "junk.pem"): "the CA file '{}' holds no usable certificate in PEM form",
    }
    for path, message in cases.items():
        error = one_error(f"web: {{type: https, ca: {path}}}", ONE_POOL)
        assert error.startswith(f"z.yaml:{CHECKS_LINE}:"), error
        assert f"checks.web.ca: {message.format(path)}" in error, error


def test_body_checks():
    assert check_of("{body: ok}").body == "ok"
    assert check_of('{body_regex: "^ok$"}').body_regex == "^ok$"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("1s250ms", 1.25),
        ("0.5m", 30.0),
        ("1d", 86400.0),
        ("2", None),
        ("0.25", None),
    ],
)
def test_durations(text, seconds):
    """Strings carry a unit; bare numbers are seconds."""
    body = (
        f"{{interval: {text}, timeout: 0.1}}" if seconds is None else f'{{interval: "{text}", timeout: 0.1}}'
    )
    check = check_of(body)
    assert check.interval == (seconds if seconds is not None else float(text))


def test_down_interval_defaults_to_twice_the_interval():
    assert check_of("{interval: 300ms, timeout: 100ms}").down_interval == pytest.approx(0.6)
    assert check_of("{interval: 300ms, timeout: 100ms, down_interval: 5s}").down_interval == 5.0


@pytest.mark.parametrize(
    ("expect", "statuses"),
    [
        ("200", {200}),
        ('"200-204"', set(range(200, 205))),
        ('"200 - 201"', {200, 201}),
        ('[200, 404, "500-502"]', {200, 404, 500, 501, 502}),
        ("[418]", {418}),
    ],
)
def test_expect(expect, statuses):
    assert check_of(f"{{expect: {expect}}}").expect == frozenset(statuses)


def test_equal_checks_under_two_names_are_equal():
    """Equality is the probe's identity: the name is for people only."""
    zone, errors = compile_text(
        zone_text(
            "a: {port: 8080}\nb: {port: 8080}\n",
            """\
            www: {check: a, members: [{address: 192.0.2.10}]}
            api: {check: b, members: [{address: 192.0.2.10}]}
            """,
        )
    )
    assert errors == []
    a, b = (next(iter(p.members())).check for p in zone.pools.values())
    assert a == b and hash(a) == hash(b) and {a.name, b.name} == {"a", "b"}


# -- check inheritance and probe addresses ----------------------------------------------------

INHERIT = """\
www:
  check: web
  groups:
    plain:
      members: [{address: 192.0.2.10}, {address: 192.0.2.11, check: api}, {address: 192.0.2.12, check: none}]
    special:
      check: api
      members: [{address: 192.0.2.20}, {address: 192.0.2.21, check: web}]
    off:
      check: none
      members: [{address: 192.0.2.30}, {address: 192.0.2.31, check: api, probe: 10.0.0.31}]
"""


def test_member_group_pool_inheritance():
    zone, errors = compile_text(zone_text("web: {port: 80}\napi: {port: 8080}\n", INHERIT))
    assert errors == []
    (pool,) = zone.pools.values()
    got = {m.address: (m.check.name if m.check else None, m.probe) for m in pool.members()}
    assert got == {
        "192.0.2.10": ("web", None),  # the pool's
        "192.0.2.11": ("api", None),  # its own beats the pool's
        "192.0.2.12": (None, None),  # "none" stops the pool's
        "192.0.2.20": ("api", None),  # the group's beats the pool's
        "192.0.2.21": ("web", None),  # its own beats the group's
        "192.0.2.30": (None, None),  # the group says none
        "192.0.2.31": ("api", "10.0.0.31"),  # its own beats the group's none; probed elsewhere
    }


def test_no_check_anywhere():
    zone, errors = compile_text(zone_text("web: {}", "www: {members: [{address: 192.0.2.10}]}"))
    assert errors == []
    (member,) = next(iter(zone.pools.values())).members()
    assert (member.check, member.probe) == (None, None)


def test_probe_address():
    zone, errors = compile_text(
        zone_text("web: {}", "www: {check: web, members: [{address: 192.0.2.10, probe: '2001:db8::1'}]}")
    )
    assert errors == []
    (member,) = next(iter(zone.pools.values())).members()
    assert (member.address, member.probe) == ("192.0.2.10", "2001:db8::1")


# -- errors -----------------------------------------------------------------------------------

L = CHECKS_LINE


@pytest.mark.parametrize(
    ("checks", "error"),
    [
        ("web: {type: tcp}", f"z.yaml:{L}:8: checks.web: a tcp check needs a 'port'"),
        ("web: {type: udp}", f"z.yaml:{L}:15: checks.web.type: "),
        (
            "web: {type: tcp, port: 22, host: a.example}",
            f"z.yaml:{L}:30: checks.web.host: 'host' is for http and https checks, not tcp",
        ),
        (
            "web: {type: tcp, port: 22, path: /}",
            f"z.yaml:{L}:30: checks.web.path: 'path' is for http and https checks, not tcp",
        ),
        (
            "web: {type: tcp, port: 22, follow_redirects: false}",
            f"z.yaml:{L}:30: checks.web.follow_redirects: 'follow_redirects' is for http and https checks, "
            "not tcp",
        ),
        (
            "web: {interval: 2s, timeout: 2s}",
            f"z.yaml:{L}:32: checks.web.timeout: timeout (2s) must be shorter than interval (2s)",
        ),
        (
            "web: {interval: 500ms, timeout: 1}",
            f"z.yaml:{L}:35: checks.web.timeout: timeout (1s) must be shorter than interval (0.5s)",
        ),
        ("web: {interval: 5 s}", f"z.yaml:{L}:19: checks.web.interval: '5 s' is not a duration"),
        ("web: {interval: 0}", f"z.yaml:{L}:19: checks.web.interval: "),
        ("web: {interval: 2d}", f"z.yaml:{L}:19: checks.web.interval: input should be less than or equal to"),
        (
            "web: {interval: 30s1m}",
            f"z.yaml:{L}:19: checks.web.interval: '30s1m' is not a duration: give each unit once",
        ),
        ("web: {port: 0}", f"z.yaml:{L}:15: checks.web.port: "),
        ("web: {rise: 0}", f"z.yaml:{L}:15: checks.web.rise: "),
        ("web: {method: POST}", f"z.yaml:{L}:17: checks.web.method: "),
        ("web: {path: health}", f"z.yaml:{L}:15: checks.web.path: path must start with '/', got 'health'"),
        ("web: {expect: 99}", f"z.yaml:{L}:17: checks.web.expect: expected an HTTP status"),
        ("web: {expect: 600}", f"z.yaml:{L}:17: checks.web.expect: expected an HTTP status"),
        ('web: {expect: "299-200"}', f"z.yaml:{L}:17: checks.web.expect: expected an HTTP status"),
        ('web: {expect: "2xx"}', f"z.yaml:{L}:17: checks.web.expect: expected an HTTP status"),
        ("web: {expect: true}", f"z.yaml:{L}:17: checks.web.expect: expected an HTTP status"),
        ('web: {expect: [200, "600-601"]}', f"z.yaml:{L}:23: checks.web.expect[1]: expected an HTTP status"),
        ("web: {expect: []}", f"z.yaml:{L}:17: checks.web.expect: list at least one status"),
        (
            'web: {body_regex: "(unclosed"}',
            f"z.yaml:{L}:21: checks.web.body_regex: not a regular expression: ",
        ),
        (
            "web: {body: ok, body_regex: ok}",
            f"z.yaml:{L}:19: checks.web.body_regex: give 'body' (a substring) or 'body_regex', not both",
        ),
        (
            "web: {method: HEAD, body: ok}",
            f"z.yaml:{L}:23: checks.web.body: a HEAD response has no body: 'body' needs method GET",
        ),
        (
            "web: {intervall: 1}",
            f"z.yaml:{L}:9: checks.web.intervall: unknown key 'intervall' (did you mean 'interval'?)",
        ),
        ("web: [port, 80]", f"z.yaml:{L}:8: checks.web: expected a mapping"),
    ],
)
def test_check_errors(checks, error):
    message = one_error(checks)
    assert message.startswith(error), message


@pytest.mark.parametrize(
    ("checks", "error"),
    [
        ("", f"z.yaml:{L - 1}:8: checks: expected a mapping, got nothing (null)"),
        ("- web", f"z.yaml:{L}:3: checks: expected a mapping, got a list"),
    ],
)
def test_checks_must_be_a_mapping(checks, error):
    assert one_error(checks) == error  # once, not again by the checks compiler


def test_all_check_errors_at_once():
    errors = errors_of("a: {type: tcp}\nb: {interval: 1, timeout: 2}\nc: {expect: 0}\n")
    assert [e.split(": ")[1] for e in errors] == ["checks.a", "checks.b.timeout", "checks.c.expect"]
    assert [int(e.split(":")[1]) for e in errors] == [L, L + 1, L + 2]


def test_unknown_check_from_a_pool_with_did_you_mean():
    error = one_error("web: {}\napi: {port: 8080}\n", "www: {check: wbe, members: [{address: 192.0.2.10}]}")
    assert error == f"z.yaml:{L + 3}:16: pools.www.check: unknown check 'wbe' (did you mean 'web'?)"


def test_unknown_check_lists_the_known_ones():
    error = one_error(
        "web: {}\napi: {port: 8080}\n",
        "www: {groups: {eu: {check: zzz, members: [{address: 192.0.2.10}]}}}",
    )
    assert error.endswith("pools.www.groups.eu.check: unknown check 'zzz' (checks: api, web)")


def test_unknown_check_on_a_member():
    error = one_error("web: {}", "www: {members: [{address: 192.0.2.10, check: webb}]}")
    assert "pools.www.members[0].check: unknown check 'webb' (did you mean 'web'?)" in error


def test_probe_needs_a_check():
    error = one_error("web: {}", "www: {members: [{address: 192.0.2.10, probe: 192.0.2.99}]}")
    assert error == (
        f"z.yaml:{L + 2}:41: pools.www.members[0].probe: "
        "'probe' needs a check (on the member, its group or the pool)"
    )


def test_probe_with_check_none_is_an_error():
    """check "none" disables an inherited check, and then a probe address has nothing to probe."""
    error = one_error(
        "web: {}", "www: {check: web, members: [{address: 192.0.2.10, check: none, probe: 10.0.0.1}]}"
    )
    assert "'probe' needs a check" in error


def test_check_none_disables_the_pools_check():
    zone, errors = compile_text(
        zone_text(
            "web: {}",
            "www: {check: web, members: [{address: 192.0.2.10, check: none}, {address: 192.0.2.11}]}",
        )
    )
    assert errors == []
    checks = {m.address: m.check for m in next(iter(zone.pools.values())).members()}
    assert checks["192.0.2.10"] is None and checks["192.0.2.11"].name == "web"


def test_probe_must_be_an_address():
    error = one_error("web: {}", "www: {check: web, members: [{address: 192.0.2.10, probe: backend.local}]}")
    assert "pools.www.members[0].probe: 'backend.local' is not an IPv4 or IPv6 address" in error


def test_a_broken_check_is_reported_once():
    """A pool that uses a check which failed to compile should not also call it unknown."""
    errors = errors_of("web: {type: tcp}", ONE_POOL)
    assert errors == [f"z.yaml:{L}:8: checks.web: a tcp check needs a 'port'"]
