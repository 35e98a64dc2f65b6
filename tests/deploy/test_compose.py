"""docker-compose.yml without Docker: PostgreSQL, a one-shot migration, two replicas behind one
nginx address, workers of the worker image that create and run a study; the token is required;
JSON logs and metrics are on and published; the order of starting is the one that works; the
files it mounts exist and the balancer's config routes to the replicas' real ports."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.deploy.deploy_files import ROOT, SERVICE_DOCKERFILE, WORKER_DOCKERFILE, compose

REQUIRED_TOKEN = "${PBT_AUTH_TOKEN:?set PBT_AUTH_TOKEN}"
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.-]+)?$")
NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def replicas() -> dict[str, Any]:
    return {n: s for n, s in services().items() if s.get("command", [])[:2] == ["pbt-service", "serve"]}


def dockerfile_of(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    return None if build is None else str(ROOT / build["context"] / build.get("dockerfile", "Dockerfile"))


def test_postgres_then_the_migration_then_two_replicas_behind_one_balancer() -> None:
    found = services()
    assert found["db"]["image"].startswith("postgres:") and "healthcheck" in found["db"]
    migrate = found["migrate"]
    assert migrate["command"][:2] == ["pbt-service", "migrate"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate.get("restart") == "no", "one-shot"
    assert len(replicas()) == 2
    for name, replica in replicas().items():
        assert replica["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert "healthcheck" in replica and "50051" in " ".join(replica["healthcheck"]["test"])
        assert "ports" not in replica or all(not p.endswith(":50051") for p in replica["ports"]), (
            f"{name}: gRPC goes through the balancer, one address")
    balancer = found["balancer"]
    assert balancer["ports"] == ["50051:50051"]
    conditions = {n: d["condition"] for n, d in balancer["depends_on"].items()}
    assert conditions == dict.fromkeys(replicas(), "service_healthy")


def test_the_balancer_config_routes_grpc_to_every_replica_on_its_port() -> None:
    config = NGINX_CONF.read_text()
    mount = next(v for v in services()["balancer"]["volumes"] if "nginx.conf" in v)
    source, target, *_ = mount.split(":")
    assert (ROOT / source).resolve() == NGINX_CONF and target == "/etc/nginx/nginx.conf"
    assert re.search(r"listen 50051;", config) and "http2 on;" in config
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", config, re.S)
    assert upstream is not None and f"grpc_pass grpc://{upstream.group(1)};" in config
    servers = dict(re.findall(r"server ([\w-]+):(\d+);", upstream.group(2)))
    assert servers.keys() == replicas().keys()
    for name, replica in replicas().items():
        command = replica["command"]
        assert servers[name] == command[command.index("--port") + 1]
        assert command[command.index("--host") + 1] == "0.0.0.0", "the balancer must reach it"
    assert config.count("{") == config.count("}")


def test_every_mounted_file_exists() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in compose()["volumes"], f"{name}: named volume {source} is not declared"


def test_the_admin_token_is_required_and_never_defaulted() -> None:
    holders = {n for n, s in services().items() if "PBT_AUTH_TOKEN" in s.get("environment", {})}
    assert set(replicas()) | {"worker"} <= holders
    for name in holders:
        assert services()[name]["environment"]["PBT_AUTH_TOKEN"] == REQUIRED_TOKEN, name


def test_json_logs_and_published_metrics_on_every_replica() -> None:
    published = []
    for name, replica in replicas().items():
        env = replica["environment"]
        assert env["PBT_LOG_FORMAT"] == "json", name
        assert env["PBT_METRICS_HOST"] == "0.0.0.0", name
        host, container = replica["ports"][0].split(":")
        assert container == env["PBT_METRICS_PORT"], name
        published.append(host)
    assert len(set(published)) == len(published), "each replica's metrics on a port of its own"


def test_the_images_come_from_the_two_dockerfiles_or_pinned_tags() -> None:
    for name, service in services().items():
        dockerfile = dockerfile_of(service)
        program = service.get("command", [""])[0]
        if program == "pbt-worker":
            assert dockerfile == str(WORKER_DOCKERFILE) and service["image"].startswith("pbt-worker:"), name
        elif program == "pbt-service":
            assert dockerfile == str(SERVICE_DOCKERFILE) and service["image"].startswith("pbt-service:"), name
        else:
            assert dockerfile is None and PINNED.match(service["image"]), f"{name}: pin {service['image']}"


def test_workers_share_a_work_directory_and_run_the_study_to_the_end() -> None:
    worker = services()["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["environment"]["PBT_SERVICE"] == "balancer:50051"
    workdir = worker["environment"]["PBT_WORKDIR"]
    assert any(v.endswith(f":{workdir}") and not v.startswith((".", "/")) for v in worker["volumes"])
    command = worker["command"]
    assert "--create-study" in command and "--study" in command
    assert "--max-trials" not in command and "--max-time" not in command, "until the study is done"


def test_the_replicas_healthcheck_passes_on_a_serving_replica_and_fails_where_none_listens(
    tmp_path: Path,
) -> None:
    """The healthcheck command itself, run against a real server (on a free port in place of the
    container's 50051): gRPC health is open without the token, so it says healthy; with nothing
    listening it says unhealthy."""
    from pbt_service.server import ServerSettings, create_server

    check = next(iter(replicas().values()))["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    running = create_server(ServerSettings(database_url=f"sqlite:///{tmp_path / 'h.db'}", port=0, auth_token="t"))
    try:
        code = check[3].replace("localhost:50051", f"localhost:{running.port}")
        assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    finally:
        running.stop(0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    code = check[3].replace("localhost:50051", f"localhost:{free}")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode != 0
