# An example zone for gdns. Copy it, change the names and addresses, and run
#   gdns check zones/
# Every key is described in docs/zone-reference.md.

# The zone this file serves. gdns answers for this name and everything under it.
origin: gslb.example.com.

# Default TTL (seconds, or a duration such as 5m) for records that do not set their own.
ttl: 300

# Start of authority. The serial is derived from the file's content when it is not
# given, so it changes whenever the content does and is the same on every instance.
# `minimum` is the negative-caching TTL (RFC 2308) of NXDOMAIN and NODATA answers.
soa:
  mname: ns1.gslb.example.com.
  rname: hostmaster.example.com.
  refresh: 3600
  retry: 600
  expire: 1209600
  minimum: 60

# The zone's name servers: these must match the NS records in the parent zone.
ns: [ns1.gslb.example.com., ns2.gslb.example.com.]

# Records, keyed by owner name relative to the origin ("@" is the origin itself).
# A value may be one item or a list; `{ttl: ..., values: [...]}` gives an rrset its own TTL.
records:
  ns1: {A: 198.51.100.53, AAAA: "2001:db8::53"}
  ns2: {A: 198.51.100.54}

  "@":
    MX: [{preference: 10, exchange: mail.example.com.}]
    TXT: ["v=spf1 -all"]
    CAA: '0 issue "ca.example.net"'

  www:
    A: {ttl: 60, values: [192.0.2.10, 192.0.2.11]}
    AAAA: "2001:db8::10"

  # A CNAME must stand alone at its name; targets are always fully qualified.
  docs: {CNAME: www.gslb.example.com.}

  # Service records, as a mapping with the RFC's field names or as one string.
  _sip._udp:
    SRV:
      - {priority: 10, weight: 60, port: 5060, target: www.gslb.example.com.}
      - "20 0 5060 backup.example.net."

  # A wildcard answers any name below `static` that is not written out.
  "*.static": {A: 192.0.2.99}

  # Delegation of a child zone, with glue for its in-zone name server.
  sub: {NS: [ns1.sub.gslb.example.com.]}
  ns1.sub: {A: 192.0.2.53}

  # Quoting is not needed for country-like words: NO stays the string "NO".
  country: {TXT: NO}

# Health checks: named, reusable probes. A pool, group or member uses one with `check:`;
# gdns probes each member on its own schedule and answers only with members that pass.
# Every key and its default is described in docs/health-checks.md.
checks:
  # HTTP GET /healthz on port 8080, every 5 s, 2 s timeout; any 2xx status passes.
  # Two passes in a row bring a member up, three failures in a row take it down.
  web:
    type: http
    port: 8080
    path: /healthz
    interval: 5s
    timeout: 2s
    rise: 2
    fall: 3

# Pools: names answered (A and AAAA) by choosing among members. A pool has named groups
# (datacenters, regions) of members; its strategy orders the groups for each client, and
# members are picked inside the first group with a healthy member of the asked family.
# A member's state comes from its health check when it has one (the `web` pool below);
# otherwise it is the configured status (up | down | drain), which also beats any probe.
# docs/strategies.md describes every key. Try each with dig @127.0.0.1 -p 5300 NAME.
pools:
  # weighted, sticky: 192.0.2.10 gets about 3/4 of client networks, 192.0.2.11 the rest;
  # the same client network (/24, or the ECS subnet) keeps getting the same address:
  #   dig +short app.gslb.example.com                -> 192.0.2.10 or .11, stable per network
  #   dig +short +subnet=203.0.113.0/24 app.gslb.example.com  (ECS scope /24 in the reply)
  app:
    ttl: 30
    strategy: weighted
    sticky: true
    groups:
      main:
        members:
          - {address: 192.0.2.10, weight: 3}
          - {address: 192.0.2.11, weight: 1}
          - {address: "2001:db8::10"}

  # failover: the primary answers while it is up; here it is marked down, so the backup
  # answers. Expect 198.51.100.30 (and ECS scope 0: the answer is the same for everyone).
  api:
    strategy: failover
    groups:
      primary: {members: [{address: 192.0.2.30, status: down}]}
      backup: {members: [{address: 198.51.100.30}]}

  # geo by client subnet (no GeoIP database needed): clients in 203.0.113.0/24 get the
  # "ap" group, everybody else "eu". With a GeoIP database (gdns serve --geoip-db FILE),
  # rules can also match countries and continents, or pick the nearest group.
  #   dig +short +subnet=203.0.113.0/24 geo.gslb.example.com   -> 203.0.113.20 (scope /24)
  #   dig +short +subnet=198.51.100.0/24 geo.gslb.example.com  -> 192.0.2.20
  geo:
    strategy: geo
    groups:
      eu: {location: [50.11, 8.68], members: [{address: 192.0.2.20}, {address: "2001:db8::20"}]}
      ap: {location: [1.35, 103.82], members: [{address: 203.0.113.20}]}
    rules:
      - {subnets: [203.0.113.0/24], groups: [ap, eu]}
      - {groups: [eu, ap]}

  # roundrobin with two answers: each query rotates the order of the three addresses.
  rr:
    strategy: roundrobin
    answers: 2
    members: [{address: 192.0.2.40}, {address: 192.0.2.41}, {address: 192.0.2.42}]

  # random: a uniform choice among the healthy members, answer after answer.
  #   for i in 1 2 3 4 5 6; do dig +short @127.0.0.1 -p 5300 lucky.gslb.example.com; done
  lucky:
    strategy: random
    members: [{address: 192.0.2.45}, {address: 192.0.2.46}]

  # latency: the group with the lowest measured round-trip time answers. Until health
  # probes measure it, groups rank in the order written, so expect 192.0.2.50.
  edge:
    strategy: latency
    groups:
      fra: {members: [{address: 192.0.2.50}]}
      iad: {members: [{address: 198.51.100.50}]}

  # Every member down: when_all_down decides (all | fallback | nodata | servfail; never
  # NXDOMAIN, since the name exists). Expect the fallback address 192.0.2.250.
  maintenance:
    when_all_down: fallback
    fallback: [192.0.2.250]
    members: [{address: 192.0.2.60, status: down}, {address: 192.0.2.61, status: drain}]

  # Health-checked failover: every member is probed with the check `web` above, and the
  # primary answers while its probes pass. In real life these are your servers; here they
  # are on 127.0.0.0/8, so trying the example sends probes to nobody else's machine.
  # With nothing listening on 127.0.0.21:8080 and 127.0.0.22:8080 every probe fails
  # ("connection refused"), both members are down and when_all_down decides: `all` answers
  # every member (a guess beats no answer), with the short degraded_ttl so that resolvers
  # ask again soon:
  #   dig +noall +answer web.gslb.example.com   -> 127.0.0.21 and 127.0.0.22, TTL 5
  # Give the backup something to pass the check, and after two good probes it answers alone
  # (TTL still 5: the primary is down); start the primary too and it answers with TTL 30:
  #   mkdir -p /tmp/www && touch /tmp/www/healthz
  #   python3 -m http.server --bind 127.0.0.22 --directory /tmp/www 8080
  web:
    strategy: failover
    check: web
    when_all_down: all
    degraded_ttl: 5
    groups:
      primary: {members: [{address: 127.0.0.21}]}
      backup: {members: [{address: 127.0.0.22}]}
