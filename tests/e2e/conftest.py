"""Fixtures for end-to-end tests against the real cluster (hack/cluster.sh up).

The cluster is found through $KUBECONFIG, else ~/.cache/kubemr/cluster/kubeconfig
(what `hack/cluster.sh kubeconfig` prints). Without a reachable cluster the e2e
tests are skipped, unless KUBEMR_E2E_REQUIRED=1 (CI), where they fail.
A failing e2e test gets the tail of every component log ($KUBEMR_LOG_DIR) in its report.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("KUBEMR_CACHE", Path.home() / ".cache" / "kubemr"))
CLUSTER_DIR = CACHE / "cluster"
LOG_DIR = Path(os.environ.get("KUBEMR_LOG_DIR", CLUSTER_DIR / "logs"))
LOG_TAIL_LINES = int(os.environ.get("KUBEMR_LOG_TAIL", "30"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "e2e: end-to-end tests against the real cluster (hack/cluster.sh up)"
    )


def log_tail(lines: int = LOG_TAIL_LINES) -> str:
    if not LOG_DIR.is_dir():
        return f"(no component logs in {LOG_DIR})"
    out = []
    for f in sorted(LOG_DIR.glob("*.log")):
        try:
            tail = f.read_text(errors="replace").splitlines()[-lines:]
        except OSError as e:
            tail = [f"(unreadable: {e})"]
        out.append(f"===== {f} (last {len(tail)} lines)")
        out.extend(tail)
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and item.get_closest_marker("e2e") is not None:
        rep.sections.append((f"kubemr component logs ({LOG_DIR})", log_tail()))


@dataclass
class Cluster:
    kubeconfig: str
    kubectl_bin: str
    mode: str  # "local" or "kind"
    namespaces: list[str] = field(default_factory=list)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args]
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}{p.stdout}")
        return p

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: dict | str) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl("apply", "-f", "-", input=text)

    def new_namespace(self, prefix: str) -> str:
        ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", ns)
        self.namespaces.append(ns)
        return ns

    def worker_nodes(self) -> list[str]:
        nodes = self.get_json("nodes", "-l", "kubemr.io/role=worker")["items"]
        return sorted(n["metadata"]["name"] for n in nodes)


def _find_cluster() -> Cluster | str:
    kubeconfig = os.environ.get("KUBECONFIG") or str(CLUSTER_DIR / "kubeconfig")
    if not Path(kubeconfig).is_file():
        return f"no kubeconfig at {kubeconfig} (run hack/cluster.sh up)"
    kubectl = str(CLUSTER_DIR / "bin" / "kubectl")
    if not os.access(kubectl, os.X_OK):
        kubectl = shutil.which("kubectl") or ""
    if not kubectl:
        return "no kubectl (hack/cluster.sh up puts one in ~/.cache/kubemr/cluster/bin)"
    mode_file = CLUSTER_DIR / "mode"
    mode = mode_file.read_text().strip() if mode_file.is_file() else "local"
    c = Cluster(kubeconfig=kubeconfig, kubectl_bin=kubectl, mode=mode)
    p = c.kubectl("get", "--raw", "/readyz", check=False, timeout=20)
    if p.returncode != 0:
        return f"cluster not reachable with {kubeconfig}: {p.stderr.strip()}"
    return c


@pytest.fixture(scope="session")
def cluster():
    found = _find_cluster()
    if isinstance(found, str):
        if os.environ.get("KUBEMR_E2E_REQUIRED") == "1":
            pytest.fail(found + "\n" + log_tail())
        pytest.skip(found)
    yield found
    for ns in found.namespaces:
        found.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# ---------------------------------------------------------------- the operator and MinIO
REPO = Path(__file__).resolve().parents[2]
SYSTEM = "kubemr-system"
SECRET = "minio-credentials"


def helm_bin() -> str:
    cached = CLUSTER_DIR / "bin" / "helm"
    return str(cached) if cached.exists() else (shutil.which("helm") or "helm")


@pytest.fixture(scope="session")
def storage(cluster):
    """Host-side S3 settings for the central and per-node MinIO servers."""
    secret = cluster.get_json("secret", SECRET, "-n", SYSTEM)["data"]
    access = base64.b64decode(secret["accessKey"]).decode()
    secret_key = base64.b64decode(secret["secretKey"]).decode()
    ip = cluster.get_json("service", "minio", "-n", SYSTEM)["spec"]["clusterIP"]
    os.environ.update(KUBEMR_S3_ENDPOINT=f"http://{ip}:9000", KUBEMR_S3_ACCESS_KEY=access,
                      KUBEMR_S3_SECRET_KEY=secret_key)
    return {"accessKey": access, "secretKey": secret_key}


@pytest.fixture(scope="session")
def operator(cluster, storage):
    nodes = cluster.worker_nodes()
    subprocess.run([helm_bin(), "upgrade", "--install", "kubemr", str(REPO / "charts" / "kubemr"),
                    "--kubeconfig", cluster.kubeconfig, "--namespace", SYSTEM,
                    "--set", "reconcileSeconds=1", "--set", "heartbeatSeconds=3",
                    "--set", "minioPerNode=true",
                    "--set", "minioNodes={" + ",".join(nodes) + "}",
                    "--wait", "--timeout", "300s"], check=True, capture_output=True, text=True)
    endpoints = {}
    for node in nodes:
        ip = cluster.get_json("service", f"minio-{node}", "-n", SYSTEM)["spec"]["clusterIP"]
        endpoints[f"node-{node}"] = f"http://{ip}:9000"
    os.environ["KUBEMR_S3_BUCKET_ENDPOINTS"] = json.dumps(endpoints)
    return nodes


@pytest.fixture
def ns(cluster, storage, operator):
    namespace = cluster.new_namespace("mr")
    cluster.kubectl("create", "secret", "generic", SECRET, "-n", namespace,
                    f"--from-literal=accessKey={storage['accessKey']}",
                    f"--from-literal=secretKey={storage['secretKey']}")
    return namespace


