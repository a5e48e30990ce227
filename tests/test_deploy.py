"""Checks of the deployment files under deploy/ that need no Docker engine and no cluster.

* When a Compose CLI is installed (`docker compose` v2 or the standalone `docker-compose`,
  e.g. Debian's package), `config -q` validates deploy/docker-compose.yml for real.
* Always (when PyYAML is importable): the compose file and the Kubernetes manifests are
  parsed and their structure is asserted: one image for every app role, start order,
  healthchecks, the staging volume shared by web and worker, probes, the RWX claim...
* The Kubernetes manifests are validated against the API's schemas (`kubernetes-validate`) and
  the custom resources (KEDA, Prometheus Operator) against their CRDs' schemas
  (tests/support/crds); the alert rules with `promtool check rules` and `promtool test rules`,
  and the dashboard's queries with `promtool` too. Under CI (CI=true) these validators must be
  installed (.ci/run installs them); on a laptop without them those tests skip.
* Optional validators run only when present: `kubectl kustomize`, `nginx -t` (binary from PATH
  or $CHUTE_NGINX_BIN).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
K8S_FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")

APP_SERVICES = ("migrate", "web", "worker")  # built from deploy/Dockerfile
BACKING_SERVICES = ("db", "rabbitmq", "minio", "redis")
STAGING_DIR = "/data/staging"
STAGES = ("assemble", "upload", "extract", "notify")
WORKERS = tuple(f"chute-worker-{stage}" for stage in STAGES)
CLI_TIMEOUT = 60
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "chute.json"
CRDS = ROOT / "tests" / "support" / "crds"


# ---------------------------------------------------------------------------------------- helpers


def _run(cmd: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)


def _compose_cli() -> list[str] | None:
    """`docker compose` (v2 plugin) if it answers, else a standalone `docker-compose`."""
    docker = shutil.which("docker")
    if docker:
        try:
            if _run([docker, "compose", "version"]).returncode == 0:
                return [docker, "compose"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def _cmd(value: Any) -> str:
    """A compose/k8s command (list or string) as one string."""
    return " ".join(value) if isinstance(value, list) else str(value or "")


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.split("=", 1) for item in env)
    return env


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a compose service's volumes (short syntax)."""
    out = {}
    for spec in service.get("volumes") or []:
        source, target = spec.split(":")[:2]
        out[target] = source
    return out


@pytest.fixture(scope="module")
def yaml() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML is not installed: structural YAML checks skipped")


@pytest.fixture(scope="module")
def compose(yaml: Any) -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def k8s(yaml: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, over every manifest in deploy/k8s."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in K8S_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in objects, f"{key} defined twice"
                objects[key] = doc
    return objects


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    containers = _pod_spec(obj)["containers"]
    assert len(containers) == 1
    return containers[0]


# ---------------------------------------------------------------------------------------- compose


def test_compose_file_validates_with_compose_cli() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "no Compose CLI: neither `docker compose` (v2 plugin) nor `docker-compose` is installed "
            "(Debian: apt-get install -y --no-install-recommends docker-compose)"
        )
    result = _run([*cli, "-f", str(COMPOSE_FILE), "config", "-q"])
    assert result.returncode == 0, f"{' '.join(cli)} config failed:\n{result.stdout}\n{result.stderr}"


def test_app_services_share_one_image_build(services: dict[str, dict[str, Any]]) -> None:
    builds = {name: services[name].get("build") for name in APP_SERVICES}
    images = {name: services[name].get("image") for name in APP_SERVICES}
    assert all(builds.values()), builds
    assert len({repr(b) for b in builds.values()}) == 1, f"app services build differently: {builds}"
    assert len(set(images.values())) == 1, f"app services tag different images: {images}"

    build = builds["web"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT, "the build context must be the repo root (pyproject.toml)"
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    # BuildKit reads <Dockerfile>.dockerignore next to the Dockerfile; the repo root has none.
    assert DOCKERFILE.with_name("Dockerfile.dockerignore").is_file()


def test_web_and_worker_start_after_migrate_and_healthy_backends(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("web", "worker"):
        deps = services[name]["depends_on"]
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions, not a bare list"
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        for backing in BACKING_SERVICES:
            assert deps[backing]["condition"] == "service_healthy", (name, backing)
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def test_migrate_is_a_one_shot(services: dict[str, dict[str, Any]]) -> None:
    migrate = services["migrate"]
    assert _cmd(migrate["command"]) == "chute migrate"
    assert migrate["restart"] == "no", "a restart policy would re-run a finished one-shot"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    long_running = set(services) - {"migrate"}
    assert long_running >= {*BACKING_SERVICES, "web", "worker", "proxy"}
    for name in sorted(long_running):
        check = services[name].get("healthcheck") or {}
        assert not check.get("disable"), name
        test = check.get("test")
        assert test and test != ["NONE"], f"{name} has no healthcheck"
        assert services[name].get("restart") in ("unless-stopped", "always"), name


def test_app_healthchecks_probe_the_right_endpoints(services: dict[str, dict[str, Any]]) -> None:
    # python:slim has no curl: the app's checks must use python.
    web = _cmd(services["web"]["healthcheck"]["test"])
    worker = _cmd(services["worker"]["healthcheck"]["test"])
    assert "python" in web and "/readyz" in web and ":8000" in web
    assert "python" in worker and ":9191" in worker
    assert "rabbitmq-diagnostics" in _cmd(services["rabbitmq"]["healthcheck"]["test"])
    assert "pg_isready" in _cmd(services["db"]["healthcheck"]["test"])
    assert "redis-cli ping" in _cmd(services["redis"]["healthcheck"]["test"])


def test_staging_volume_is_shared_by_web_and_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    sources = {name: _mounts(services[name]).get(STAGING_DIR) for name in ("web", "worker")}
    assert sources["web"] and sources["web"] == sources["worker"], sources
    volume = sources["web"]
    assert not volume.startswith((".", "/")), "staging must be a named volume, not a bind mount"
    assert volume in (compose.get("volumes") or {}), f"volume {volume!r} is not declared"
    for name in ("web", "worker"):
        assert _env(services[name])["CHUTE_STAGING_DIR"] == STAGING_DIR, name


def test_commands_and_environment(services: dict[str, dict[str, Any]]) -> None:
    assert _cmd(services["worker"]["command"]).startswith("chute worker")
    assert _cmd(services["web"]["command"]).startswith("chute web --bind 0.0.0.0:8000")
    for name in APP_SERVICES:
        env = _env(services[name])
        assert env["CHUTE_DATABASE_URL"].startswith("postgresql+psycopg://"), name
        assert env["CHUTE_BROKER_URL"].startswith("amqp://"), name
        assert env["CHUTE_STORAGE_URL"].startswith("s3://"), name
        assert env["CHUTE_REDIS_URL"].startswith("redis://redis:6379/"), name
        # credentials come from the environment with dev defaults, never hard-coded
        assert "${CHUTE_DB_PASSWORD:-" in env["CHUTE_DATABASE_URL"], name
    assert _env(services["worker"])["CHUTE_WORKER_METRICS_PORT"] == "9191"
    env = _env(services["web"])
    assert env["CHUTE_STORAGE_PUBLIC_URL"].endswith("localhost:9000}"), "presigned URLs clients can reach"
    assert "CHUTE_TRUSTED_PROXIES" in env and "CHUTE_ADMIN_TOKEN" in env
    assert any(str(p).endswith(":9000") for p in services["minio"]["ports"]), "the public S3 endpoint"


def test_only_the_proxy_publishes_the_api(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        assert not services[name].get("ports"), f"{name} must not bypass the buffering proxy"
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert any(str(p).endswith(":8080") for p in proxy["ports"])


def test_bind_mounted_config_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source in _mounts(service).values():
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"


def test_nginx_buffers_requests_for_64_mib_chunks(services: dict[str, dict[str, Any]]) -> None:
    assert _mounts(services["proxy"])["/etc/nginx/conf.d/default.conf"] == "./nginx.conf"
    conf = (DEPLOY / "nginx.conf").read_text()
    directives = re.sub(r"#.*", "", conf)  # comments could mention anything
    assert re.search(r"^\s*proxy_request_buffering\s+on;", directives, re.M)
    size = re.search(r"^\s*client_max_body_size\s+(\d+)m;", directives, re.M)
    assert size and int(size.group(1)) >= 65, "must fit a 64 MiB chunk plus framing"
    assert re.search(r"^\s*proxy_read_timeout\s+\d+s;", directives, re.M)
    assert "web:8000" in directives
    assert re.search(r"location\s+=\s+/healthz\s*\{[^}]*proxy_pass", directives)
    assert re.search(r"location\s+=\s+/nginx-healthz", directives)
    assert "/nginx-healthz" in _cmd(services["proxy"]["healthcheck"]["test"])


def test_rabbitmq_consumer_timeout_is_explicit(services: dict[str, dict[str, Any]]) -> None:
    rabbit = services["rabbitmq"]
    assert rabbit["image"].startswith("rabbitmq:") and rabbit["image"].endswith("-management")
    assert "./rabbitmq.conf" in _mounts(rabbit).values()
    assert any(str(p).endswith(":15672") for p in rabbit["ports"]), "management UI"
    conf = (DEPLOY / "rabbitmq.conf").read_text()
    found = re.search(r"^consumer_timeout\s*=\s*(\d+)\s*$", conf, re.M)
    assert found, "consumer_timeout must be set explicitly"
    assert 5 * 60_000 <= int(found.group(1)) <= 60 * 60_000  # milliseconds


# ---------------------------------------------------------------------------------------- image


def test_dockerignore_lets_pip_install_see_the_packages() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.with_name("Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "*", "allow-list: ignore everything first"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    readme = project["project"].get("readme", "pyproject.toml")
    readme = readme["file"] if isinstance(readme, dict) else readme
    missing = ({"pyproject.toml", readme} | packages) - allowed
    assert not missing, f"the build context would lack {sorted(missing)}"


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    froms = [line for line in instructions if line.upper().startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage build"
    assert "COPY --from=builder" in text
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runtime must not run as root"
    assert any(line.startswith("VOLUME") and STAGING_DIR in line for line in instructions)
    healthcheck = text[text.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "/healthz" in healthcheck and "python" in healthcheck and "curl" not in healthcheck
    assert instructions[-1] == 'CMD ["chute", "web", "--bind", "0.0.0.0:8000"]'
    assert "python:3.11-slim" in text


# ---------------------------------------------------------------------------------------- kubernetes


def test_k8s_manifests_are_well_formed(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    expected = {
        ("Namespace", "chute"),
        ("ConfigMap", "chute-config"),
        ("Secret", "chute-secrets"),
        ("PersistentVolumeClaim", "chute-staging"),
        ("Deployment", "chute-web"),
        ("Service", "chute-web"),
        ("Deployment", "chute-redis"),
        ("Service", "chute-redis"),
        *(("Deployment", name) for name in WORKERS),
        *(("ScaledObject", name) for name in WORKERS),
        ("HorizontalPodAutoscaler", "chute-web"),
        ("PodDisruptionBudget", "chute-web"),
        ("PodDisruptionBudget", "chute-worker"),
        ("NetworkPolicy", "chute-default-deny"),
        ("NetworkPolicy", "chute-redis"),
        ("ServiceMonitor", "chute"),
        ("Job", "chute-migrate"),
    }
    assert expected <= set(k8s), expected - set(k8s)
    for (kind, name), obj in k8s.items():
        assert obj.get("apiVersion"), (kind, name)
        if kind != "Namespace":
            assert obj["metadata"].get("namespace") == "chute", (kind, name)


def test_k8s_one_image_for_every_role(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    workloads = [k8s["Deployment", name] for name in ("chute-web", *WORKERS)] + [k8s["Job", "chute-migrate"]]
    images = {_container(obj)["image"] for obj in workloads}
    assert len(images) == 1, images
    for obj in workloads:
        sources = [ref for e in _container(obj)["envFrom"] for ref in e.values()]
        assert {"name": "chute-config"} in sources and {"name": "chute-secrets"} in sources
        assert _pod_spec(obj)["securityContext"]["runAsNonRoot"] is True


def test_k8s_web_probes_and_service(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    web = k8s["Deployment", "chute-web"]
    container = _container(web)
    assert _cmd(container["command"]).startswith("chute web --bind 0.0.0.0:8000")
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == 8000

    service = k8s["Service", "chute-web"]
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert web["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in ("http", 8000)


def test_k8s_worker_and_migrate_commands(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    for stage, name in zip(STAGES, WORKERS, strict=True):
        worker = k8s["Deployment", name]
        command = _cmd(_container(worker)["command"])
        assert command.startswith("chute worker") and command.endswith(f"--queues {stage}"), command
        labels = worker["spec"]["template"]["metadata"]["labels"]
        assert worker["spec"]["selector"]["matchLabels"].items() <= labels.items()

    job = k8s["Job", "chute-migrate"]
    assert _cmd(_container(job)["command"]) == "chute migrate"
    assert _pod_spec(job)["restartPolicy"] == "Never"


def test_k8s_staging_claim_is_rwx_and_shared(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    pvc = k8s["PersistentVolumeClaim", "chute-staging"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "web and worker pods share it across nodes"
    for name in ("chute-web", *WORKERS):
        deployment = k8s["Deployment", name]
        volumes = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in _pod_spec(deployment)["volumes"]
            if "persistentVolumeClaim" in v
        }
        mounts = {m["mountPath"]: m["name"] for m in _container(deployment)["volumeMounts"]}
        assert volumes[mounts[STAGING_DIR]] == "chute-staging", name


def test_k8s_config_and_secret_template(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    config = k8s["ConfigMap", "chute-config"]["data"]
    assert config["CHUTE_STAGING_DIR"] == STAGING_DIR
    assert config["CHUTE_WEBHOOK_ALLOWED_HOSTS"] == "", "empty in production"
    secret = k8s["Secret", "chute-secrets"]["stringData"]
    assert set(secret) == {"CHUTE_DATABASE_URL", "CHUTE_BROKER_URL", "CHUTE_STORAGE_URL", "CHUTE_ADMIN_TOKEN",
                           "CHUTE_RABBITMQ_MANAGEMENT_URL"}  # fmt: skip
    assert config["CHUTE_STORAGE_PUBLIC_URL"].startswith("https://") and config["CHUTE_TRUSTED_PROXIES"]
    for key, value in secret.items():
        assert "<" in value and ">" in value, f"{key}: the template must hold placeholders only"


def test_k8s_redis_serves_web_and_workers_as_compose_does(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    """CHUTE_REDIS_URL names the Redis Service; the Service reaches the Redis pod; only web and
    worker pods may connect; no persistence (the counters expire by themselves), as in compose."""
    url = urlsplit(k8s["ConfigMap", "chute-config"]["data"]["CHUTE_REDIS_URL"])
    assert url.scheme == "redis" and url.hostname and url.port
    service = k8s["Service", url.hostname.split(".")[0]]
    (port,) = service["spec"]["ports"]
    assert port["port"] == url.port
    assert _pods_selected(k8s, service["spec"]["selector"]) == ["chute-redis"]
    redis = k8s["Deployment", "chute-redis"]
    container = _container(redis)
    assert {p["name"]: p["containerPort"] for p in container["ports"]}[port["targetPort"]] == 6379
    assert redis["spec"]["replicas"] == 1 and redis["spec"]["selector"]["matchLabels"].items() <= (
        redis["spec"]["template"]["metadata"]["labels"].items()
    )
    command = container["command"]
    assert command[0] == "redis-server" and "--appendonly no" in _cmd(command)
    assert command[command.index("--save") + 1] == "", "no snapshots"
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == ["redis-cli", "ping"], probe
    assert _pod_spec(redis)["securityContext"]["runAsNonRoot"] is True

    policy = k8s["NetworkPolicy", "chute-redis"]["spec"]
    assert _pods_selected(k8s, policy["podSelector"]["matchLabels"]) == ["chute-redis"]
    (rule,) = policy["ingress"]
    clients = [name for peer in rule["from"] for name in _pods_selected(k8s, peer["podSelector"]["matchLabels"])]
    assert sorted(clients) == sorted(["chute-web", *WORKERS])
    assert [p["port"] for p in rule["ports"]] == [6379]
    web_egress = [p["port"] for rule in k8s["NetworkPolicy", "chute-web"]["spec"]["egress"] for p in rule["ports"]]
    assert 6379 in web_egress, "web pods must reach Redis past the default deny"


def test_k8s_kustomization_lists_existing_files_but_not_the_template(yaml: Any) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    for resource in resources:
        assert (K8S / resource).is_file(), resource
    assert "redis.yaml" in resources, "the rate limiter's Redis is part of the release"
    assert "secret.example.yaml" not in resources, "apply -k must never overwrite the real Secret"
    assert "migrate-job.yaml" not in resources, "a Job is immutable: run it per release"


def test_readme_names_the_stage_queues() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for stage in STAGES:
        assert f"chute.{stage}" in readme
    assert ".DQ" in readme and ".XQ" in readme and "15672" in readme and "--queues" in readme


# ---------------------------------------------------------------------------------------- optional tools


def test_kustomize_build() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = _run([kubectl, "kustomize", str(K8S)])
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout


def _required_tool(name: str, install: str) -> str:
    """The tool's path; skips on a laptop without it, fails under CI (which installs it)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing: CI must install it ({install})")
        pytest.skip(f"{name} is not installed ({install})")
    return path


def test_k8s_schemas() -> None:
    validator = _required_tool("kubernetes-validate", "pip install kubernetes-validate")
    result = _run([validator, "--strict", "--quiet", "-k", "1.30.0", *map(str, K8S_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_config_syntax(tmp_path: Path) -> None:
    nginx = os.environ.get("CHUTE_NGINX_BIN") or _required_tool("nginx", "apt-get install nginx-light")
    # The file is a server block for conf.d/: wrap it in a minimal main config whose paths
    # all point into tmp_path, so the test needs no root and touches nothing global.
    (tmp_path / "logs").mkdir()
    temp = " ".join(
        f"{kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{\n  {temp}\n  access_log {tmp_path / 'access.log'};\n  include {DEPLOY / 'nginx.conf'};\n}}\n"
    )
    result = _run([nginx, "-t", "-p", str(tmp_path), "-c", str(main), "-e", "stderr"])
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------- operations


def _crd_schemas(yaml: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every vendored CRD version."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schemas[f"{group}/{version['name']}", kind] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_k8s_custom_resources_match_their_crds(yaml: Any, k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    """KEDA's and the Prometheus Operator's objects against the schemas their CRDs publish."""
    jsonschema = pytest.importorskip("jsonschema")
    schemas = _crd_schemas(yaml)
    group = [(obj, obj["apiVersion"].split("/")[0]) for obj in k8s.values()]
    custom = [obj for obj, name in group if "." in name and not name.endswith("k8s.io")]
    assert {obj["kind"] for obj in custom} == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}
    for obj in custom:
        schema = schemas[obj["apiVersion"], obj["kind"]]
        # the CRD schemas leave metadata open; validate the spec strictly (no unknown fields)
        jsonschema.validate(obj["spec"], _closed(schema["properties"]["spec"]))


def _closed(schema: Any) -> Any:
    """The schema with additionalProperties false wherever it lists properties (kubectl's strict mode)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def test_k8s_every_stage_scales_on_its_own_queue(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    """A ScaledObject per stage Deployment, on that stage's queue, counting ready + unacked."""
    auth = k8s["TriggerAuthentication", "chute-rabbitmq-management"]
    assert auth["spec"]["secretTargetRef"][0]["parameter"] == "host"
    for stage, name in zip(STAGES, WORKERS, strict=True):
        scaled = k8s["ScaledObject", name]["spec"]
        assert scaled["scaleTargetRef"]["name"] == name and ("Deployment", name) in k8s
        assert scaled["minReplicaCount"] >= 1, "a worker also moves its stage's retries out of .DQ"
        assert scaled["maxReplicaCount"] > scaled["minReplicaCount"]
        (trigger,) = scaled["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "rabbitmq" and meta["queueName"] == f"chute.{stage}"
        assert meta["protocol"] == "http", "only the management API counts unacked messages"
        assert meta.get("excludeUnacknowledged", "false") == "false" and meta["mode"] == "QueueLength"
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        assert "replicas" not in k8s["Deployment", name]["spec"], "KEDA owns the replica count"


def _pods_selected(k8s: dict[tuple[str, str], dict[str, Any]], selector: dict[str, str]) -> list[str]:
    return [
        name
        for (kind, name), obj in k8s.items()
        if kind in ("Deployment", "Job") and selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_k8s_web_hpa_pdbs_and_network_policies_select_real_pods(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    hpa = k8s["HorizontalPodAutoscaler", "chute-web"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chute-web"}
    assert hpa["minReplicas"] >= 2 and "replicas" not in k8s["Deployment", "chute-web"]["spec"]
    assert _pods_selected(k8s, k8s["PodDisruptionBudget", "chute-web"]["spec"]["selector"]["matchLabels"]) == [
        "chute-web"
    ]
    workers = k8s["PodDisruptionBudget", "chute-worker"]["spec"]["selector"]["matchLabels"]
    assert sorted(_pods_selected(k8s, workers)) == sorted(WORKERS)
    deny = k8s["NetworkPolicy", "chute-default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    web = k8s["NetworkPolicy", "chute-web"]["spec"]
    assert _pods_selected(k8s, web["podSelector"]["matchLabels"]) == ["chute-web"]
    assert [p["port"] for rule in web["ingress"] for p in rule["ports"]] == [8000]
    worker = k8s["NetworkPolicy", "chute-worker"]["spec"]
    assert sorted(_pods_selected(k8s, worker["podSelector"]["matchLabels"])) == sorted(WORKERS)
    assert [p["port"] for rule in worker["ingress"] for p in rule["ports"]] == [9191]


def test_k8s_service_monitor_scrapes_web_and_every_worker(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    monitor = k8s["ServiceMonitor", "chute"]["spec"]
    wanted = monitor["selector"]["matchLabels"].items()
    services = [o for (kind, _), o in k8s.items() if kind == "Service" and wanted <= o["metadata"]["labels"].items()]
    ports = {p["name"]: obj["metadata"]["name"] for obj in services for p in obj["spec"]["ports"]}
    assert {e["port"] for e in monitor["endpoints"]} == {"http", "metrics"} <= set(ports)
    metrics_service = k8s["Service", ports["metrics"]]["spec"]
    assert sorted(_pods_selected(k8s, metrics_service["selector"])) == sorted(WORKERS)


def test_k8s_every_container_has_requests_limits_and_probes(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    for name in ("chute-web", *WORKERS, "chute-redis"):
        container = _container(k8s["Deployment", name])
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"], name
        assert container["livenessProbe"] and (container.get("startupProbe") or container.get("readinessProbe")), name


def test_alert_rules_check_and_fire_as_their_unit_tests_say() -> None:
    promtool = _required_tool("promtool", "apt-get install prometheus")
    check = _run([promtool, "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert check.returncode == 0, check.stdout + check.stderr
    tested = _run([promtool, "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_alert_rules_cover_what_ops_asked_for(yaml: Any) -> None:
    rules = [r for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    names = {r["alert"] for r in rules}
    assert {"ChuteJobsStuck", "ChuteQueueAgeHigh", "ChuteWebhookFailureRate", "ChuteDeadLettersGrowing"} <= names


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_queries_parse_and_name_only_metrics_chute_exports(tmp_path: Path, yaml: Any) -> None:
    """Every panel's PromQL parses (promtool, as recording rules) and uses metrics that exist."""
    queries = _dashboard_queries()
    titles = " ".join(title.lower() for title, _ in queries)
    for topic in ("jobs ended", "stage run time", "ready and unacked", "oldest waiting", "failed jobs by code",
                  "webhook"):  # fmt: skip
        assert topic in titles, topic
    exported = _exported_metric_names()
    for title, expr in queries:
        for metric in re.findall(r"\b(chute_[a-z_]+)", expr):
            base = re.sub(r"_(bucket|count|sum|total)$", "", metric)
            assert metric in exported or base in exported, f"{title}: {metric} is not a chute metric"
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query:{i}", "expr": expr}
                                                        for i, (_, expr) in enumerate(queries)]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool = _required_tool("promtool", "apt-get install prometheus")
    result = _run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def _exported_metric_names() -> set[str]:
    """Metric names declared in chute's code (prometheus_client objects and scrape-time gauges)."""
    declared = re.compile(r'(?:Counter|Histogram|Gauge|GaugeMetricFamily)\(\s*"(chute_[a-z_]+)"')
    names: set[str] = set()
    for path in [*(ROOT / "actors").glob("*.py"), *(ROOT / "web").glob("*.py")]:
        names.update(declared.findall(path.read_text()))
    return names


def test_readme_lists_every_metric_and_explains_reading_the_queues() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in sorted(_exported_metric_names()):
        assert name in readme, f"README does not list {name}"
    deploy = (DEPLOY / "README.md").read_text()
    assert "unacked" in deploy.lower() and "prefetch" in deploy.lower()
    assert "growing `Ready` count" not in deploy, "Ready stays 0 under prefetch: that advice was wrong"

def test_nginx_passes_event_streams_through_unbuffered() -> None:
    directives = re.sub(r"#.*", "", (DEPLOY / "nginx.conf").read_text())
    block = re.search(r"location\s+~\s+\^/v1/\(events\|jobs/\[\^/\]\+/events\)\$\s*\{([^}]*)\}", directives)
    assert block, "the SSE routes need a location of their own"
    assert re.search(r"^\s*proxy_buffering\s+off;", block.group(1), re.M)
    timeout = re.search(r"^\s*proxy_read_timeout\s+(\d+)s;", block.group(1), re.M)
    assert timeout and int(timeout.group(1)) > 600, "longer than a stream's longest life (CHUTE_SSE_MAX_STREAM_SECONDS)"
