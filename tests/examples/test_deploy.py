"""The deployment examples under examples/deploy: the systemd unit passes `systemd-analyze
verify` and keeps its sandbox, the Dockerfile parses with BuildKit's own parser and builds a
compiled image that runs as a non-root user, the Kubernetes manifests validate against the
Kubernetes schemas (kubernetes-validate, offline), and the ConfigMap's config is valid and
reloads in a real gateway when the kubelet swaps its `..data` symlink."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import yaml

from support.gateway import GatewayProcess, free_port
from support.rawhttp import get

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "deploy"
K8S = DEPLOY / "kubernetes"
INSTALLED = "/opt/edgeward/.venv/bin/edgeward"
# The oldest Kubernetes minor the manifests are for: preStop `sleep` is GA-enabled from 1.30.
K8S_VERSION = "1.30"


def _unit_here(tmp_path: Path) -> Path:
    """The unit with its commands pointing at this checkout's edgeward (verify checks they
    are executables)."""
    exe = shutil.which("edgeward", path=os.path.dirname(sys.executable))
    assert exe is not None
    unit = tmp_path / "edgeward.service"
    unit.write_text((DEPLOY / "edgeward.service").read_text().replace(INSTALLED, exe))
    return unit


def test_systemd_unit_verifies_and_is_sandboxed(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/test.sh installs systemd"
    unit = _unit_here(tmp_path)
    done = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60)
    # verify prints unknown keys and bad values as warnings, with exit status 0: both count.
    assert (done.returncode, done.stdout + done.stderr) == (0, ""), done
    done = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60)
    last = done.stdout.strip().splitlines()[-1]
    level = float(last.split("edgeward.service: ")[1].split()[0])
    assert level <= 2.0, done.stdout  # "OK"; an unsandboxed service scores 9.6 "UNSAFE"


def test_systemd_unit_reloads_with_sighup_and_outlasts_the_drain() -> None:
    unit = _sections((DEPLOY / "edgeward.service").read_text())["Service"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["ExecStartPre"] == [f"{INSTALLED} validate"]
    assert int(unit["TimeoutStopSec"][0]) > 10  # server.drain_timeout
    assert unit["User"] == ["edgeward"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"] and int(unit["LimitNOFILE"][0]) >= 65536


def _sections(text: str) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = out.setdefault(line.strip("[]"), {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return out


def test_dockerfile_parses_builds_compiled_and_runs_unprivileged() -> None:
    commands = dockerfile.parse_file(str(DEPLOY / "Dockerfile"))  # BuildKit's parser
    stages: list[list[Any]] = []
    for cmd in commands:
        if cmd.cmd == "FROM":
            stages.append([])
        stages[-1].append(cmd)
    assert len(stages) == 2, "a build stage with the compiler, a runtime stage without"
    build, runtime = stages
    run = " ".join(" ".join(c.value) for c in build if c.cmd == "RUN")
    assert "gcc" in run and "EDGEWARD_NATIVE=1 scripts/bootstrap.sh" in run
    assert "n.stale() is not False" in run  # the build fails unless the compiled build is used
    for cmd in build:
        if cmd.cmd == "COPY":
            for source in cmd.value[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    names = [c.cmd for c in runtime]
    assert "gcc" not in " ".join(c.original for c in runtime)
    user = [c.value[0] for c in runtime if c.cmd == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert names.index("USER") < names.index("ENTRYPOINT")
    entry = next(c for c in runtime if c.cmd == "ENTRYPOINT")
    assert entry.json and entry.value[0] == INSTALLED  # exec form: signals reach edgeward
    python = next(c for c in runtime if c.cmd == "FROM").value[0]
    assert python.startswith("python:3.11"), python  # requires-python >= 3.11
    assert any(c.cmd == "HEALTHCHECK" and "9901/healthz" in c.original for c in runtime)


def _manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    docs = _manifests()
    assert {d["kind"] for d in docs} == {"ConfigMap", "Deployment", "Service",
                                         "PodDisruptionBudget"}
    for doc in docs:
        # strict: a key the schema does not have (a typo) is an error too
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    broken = next(d for d in docs if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(broken))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"][
        "pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kubernetes_probes_pdb_and_config_mount_fit_the_gateway() -> None:
    docs = {d["kind"]: d for d in _manifests()}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = yaml.safe_load(docs["ConfigMap"]["data"]["gateway.yaml"])
    assert config["admin"]["listen"] == f"0.0.0.0:{ports['admin']}"
    assert config["listen"] == f"0.0.0.0:{ports['http']}"
    probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe")}
    assert probes == {"livenessProbe": {"path": "/healthz", "port": "admin"},
                      "readinessProbe": {"path": "/ready", "port": "admin"}}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in mount  # a subPath mount never sees the ConfigMap change
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EDGEWARD_CONFIG"] == f"{mount['mountPath']}/gateway.yaml"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + 10  # + server.drain_timeout
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget",):
        assert docs[kind]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert docs["Deployment"]["spec"]["replicas"] > 1
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])


def _configmap_text() -> str:
    (cm,) = [d for d in _manifests() if d["kind"] == "ConfigMap"]
    text: str = cm["data"]["gateway.yaml"]
    return text


def _project(mount: Path, text: str, version: int) -> None:
    """What the kubelet does to a ConfigMap volume: a new timestamped directory, a temporary
    `..data` symlink renamed over the old one, the old directory removed."""
    new = mount / f"..2026_12_07_00_00_0{version}.{version}"
    new.mkdir()
    (new / "gateway.yaml").write_text(text)
    old = os.readlink(mount / "..data") if (mount / "..data").is_symlink() else None
    os.symlink(new.name, mount / "..data_tmp")
    os.rename(mount / "..data_tmp", mount / "..data")
    if not (mount / "gateway.yaml").is_symlink():
        os.symlink("..data/gateway.yaml", mount / "gateway.yaml")
    if old is not None:
        shutil.rmtree(mount / old)


def test_a_configmap_change_reloads_through_the_symlink_swap(tmp_path: Path) -> None:
    """The ConfigMap's config (only its addresses moved to free loopback ports) starts a
    real gateway, and a new ConfigMap version projected as the kubelet does applies."""
    port, admin = free_port(), free_port()
    text = (_configmap_text().replace("0.0.0.0:8080", f"127.0.0.1:{port}")
            .replace("0.0.0.0:9901", f"127.0.0.1:{admin}"))
    mount = tmp_path / "config"
    mount.mkdir()
    _project(mount, text, 1)
    gw = GatewayProcess(["run", "-c", str(mount / "gateway.yaml")], port, tmp_path,
                        {"EDGEWARD_ADMIN_TOKEN": "t" * 32})
    with gw:
        assert get(gw.port, "/nowhere").status == 404
        assert get(gw.port, "/orders").status in (502, 503)  # no such host here
        _project(mount, text.replace("path_prefix: /orders", "path_prefix: /nowhere"), 2)
        deadline = time.monotonic() + 10
        while get(gw.port, "/nowhere").status == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(gw.port, "/nowhere").status in (502, 503)  # the route moved
        assert get(gw.port, "/orders").status == 404
