"""The Kubernetes manifests of deploy/kubernetes without a cluster: each validates against the
Kubernetes API schemas (kubernetes_validate, strict: an unknown or misspelt field fails), each
kustomization lists exactly the files beside it, the overlay's patches apply to the base, and the
Deployment, Service, Jobs and Secret agree with each other and with the service's real settings."""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pbt_service.options import SERVE_OPTIONS, resolve
from pbt_service.server import LIVENESS
from tests.deploy.deploy_files import (
    KUBERNETES,
    KUSTOMIZATION,
    ROOT,
    SERVICE_IMAGE,
    WORKER_IMAGE,
    kustomizations,
    load_yaml,
    manifest,
    manifest_files,
    manifests,
    pod_spec,
    secret_env_keys,
)

VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
"""The oldest Kubernetes these manifests are for (the gRPC probe is GA since 1.27, Indexed Jobs
since 1.24) and the newest the validator knows."""
SECRET = "pbt-service"
GRPC_PORT = 50051
METRICS_PORT = 9464


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(KUBERNETES)))
def test_every_manifest_validates_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    resource = load_yaml(path)
    kubernetes_validate.validate(resource, version, strict=True)


def test_a_manifest_with_a_misspelt_field_is_refused() -> None:
    deployment = copy.deepcopy(manifest("Deployment", "pbt-service"))
    pod_spec(deployment)["containers"][0]["readinesProbe"] = {"grpc": {"port": GRPC_PORT}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


@pytest.mark.parametrize("kustomization", kustomizations(), ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_a_kustomization_lists_exactly_the_files_beside_it(kustomization: Path) -> None:
    config = load_yaml(kustomization)
    assert config["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and config["kind"] == "Kustomization"
    folder = kustomization.parent
    resources = config["resources"]
    files = sorted(r for r in resources if r.endswith(".yaml"))
    bases = [r for r in resources if not r.endswith(".yaml")]
    assert len(set(resources)) == len(resources), "a resource listed twice"
    present = sorted(p.name for p in folder.glob("*.yaml") if p.name != KUSTOMIZATION)
    assert files == present
    for base in bases:
        assert (folder / base / KUSTOMIZATION).is_file(), f"{base}: not a kustomization"
    for generator in config.get("secretGenerator", []):
        for env_file in generator.get("envs", []):
            # The real values stay out of git; the template holds the keys, with placeholders.
            assert (folder / f"{env_file}.example").is_file()
            assert env_file in (folder / ".gitignore").read_text().split()


def test_the_overlay_patches_apply_to_the_base_and_what_they_make_still_validates() -> None:
    overlay = load_yaml(KUBERNETES / "try-postgres" / KUSTOMIZATION)
    assert overlay["patches"]
    for patch in overlay["patches"]:
        target = patch["target"]
        resource = copy.deepcopy(manifest(target["kind"], target["name"]))
        for operation in yaml.safe_load(patch["patch"]):
            apply_json_patch(resource, operation)
        for version in VERSIONS:
            kubernetes_validate.validate(resource, version, strict=True)


def apply_json_patch(document: dict[str, Any], operation: dict[str, Any]) -> None:
    """One RFC 6902 `remove` or `replace`; a path that does not exist fails, as in kustomize."""
    keys = [k.replace("~1", "/").replace("~0", "~") for k in operation["path"].split("/")[1:]]
    parent: Any = document
    for key in keys[:-1]:
        parent = parent[int(key)] if isinstance(parent, list) else parent[key]
    last: Any = int(keys[-1]) if isinstance(parent, list) else keys[-1]
    assert operation["op"] in ("remove", "replace"), operation
    parent[last]  # noqa: B018 - raises for a path the base lacks
    if operation["op"] == "remove":
        del parent[last]
    else:
        parent[last] = operation["value"]


def test_the_namespace_is_set_once_by_the_kustomization() -> None:
    base = load_yaml(KUBERNETES / KUSTOMIZATION)
    assert manifest("Namespace", base["namespace"])
    assert all("namespace" not in m["metadata"] for _, m in manifests()), "the kustomization sets it"


def test_the_service_runs_several_replicas_with_grpc_probes_limits_and_no_root() -> None:
    deployment = manifest("Deployment", "pbt-service")
    assert deployment["spec"]["replicas"] >= 2
    spec = pod_spec(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    assert container["image"] == SERVICE_IMAGE
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    assert container["readinessProbe"]["grpc"] == {"port": ports["grpc"]}
    # Liveness asks for the health name that does not follow the database: an outage must not
    # restart every replica at once.
    assert container["livenessProbe"]["grpc"] == {"port": ports["grpc"], "service": LIVENESS}
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    command = container["command"]
    assert command[command.index("--port") + 1] == str(ports["grpc"])
    assert command[command.index("--host") + 1] == "0.0.0.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["PBT_METRICS_PORT"]["value"] == str(ports["metrics"])
    assert env["PBT_LOG_FORMAT"]["value"] == "json"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])


def test_the_service_settings_resolve_to_what_the_manifest_means() -> None:
    """`pbt-service serve` reads the variables through SERVE_OPTIONS: the values the Deployment
    sets parse, and the metrics server binds every interface (Prometheus scrapes from outside)."""
    container = pod_spec(manifest("Deployment", "pbt-service"))["containers"][0]
    environ = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    known = {option.variable for option in SERVE_OPTIONS}
    assert set(environ) <= known
    values = resolve(argparse.Namespace(), SERVE_OPTIONS, environ)
    assert values["metrics_port"] == METRICS_PORT and values["metrics_host"] == "0.0.0.0"
    assert values["log_format"] == "json"


def test_the_service_object_targets_the_container_ports() -> None:
    service = manifest("Service", "pbt-service")
    deployment = manifest("Deployment", "pbt-service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    container_ports = {p["name"]: p["containerPort"] for p in pod_spec(deployment)["containers"][0]["ports"]}
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(ports) == set(container_ports)
    for name, port in ports.items():
        assert port["targetPort"] in (container_ports[name], name), name
    budget = manifest("PodDisruptionBudget", "pbt-service")
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"], "a drain must be possible"


def test_the_workers_are_an_indexed_job_with_one_gpu_each_and_a_name_from_the_index() -> None:
    job = manifest("Job", "pbt-workers")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] >= 2 and job["spec"]["completions"] >= job["spec"]["parallelism"]
    spec = pod_spec(job)
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["image"] == WORKER_IMAGE
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    command = container["command"]
    assert command[0] == "pbt-worker" and "--workers" not in command, "one worker per pod"
    name = command[command.index("--worker-name") + 1]
    assert re.fullmatch(r"\w*\$\(JOB_COMPLETION_INDEX\)", name), name
    index = next(e for e in container["env"] if e["name"] == "JOB_COMPLETION_INDEX")
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']")
    # The identity lives in the work directory: it must outlive the pod, on the shared claim.
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]
              if "persistentVolumeClaim" in v}
    workdir_volume = next(n for n, path in mounts.items() if path == env["PBT_WORKDIR"])
    assert manifest("PersistentVolumeClaim", claims[workdir_volume])["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_migration_job_runs_migrate_on_the_same_database() -> None:
    job = manifest("Job", "pbt-migrate")
    (container,) = pod_spec(job)["containers"]
    assert container["image"] == SERVICE_IMAGE and container["command"][:2] == ["pbt-service", "migrate"]
    database = next(e for e in container["env"] if e["name"] == "PBT_DATABASE_URL")
    deployment = pod_spec(manifest("Deployment", "pbt-service"))["containers"][0]
    assert database in deployment["env"]


def test_every_secret_reference_names_the_generated_secret_and_a_key_of_its_template() -> None:
    generated = {g["name"] for g in load_yaml(KUBERNETES / KUSTOMIZATION)["secretGenerator"]}
    assert generated == {SECRET}
    keys = secret_env_keys()
    references = [item["valueFrom"]["secretKeyRef"] for _, resource in manifests()
                  if "template" in resource.get("spec", {})
                  for container in pod_spec(resource)["containers"] for item in container.get("env", [])
                  if "secretKeyRef" in item.get("valueFrom", {})]
    assert references
    for reference in references:
        assert reference["name"] == SECRET and reference["key"] in keys, reference
    placeholders = [line for line in (KUBERNETES / "secret.env.example").read_text().splitlines()
                    if "=" in line and not line.startswith("#")]
    assert all("CHANGE-ME" in line for line in placeholders), "the template holds no real value"


def test_the_try_out_postgres_is_marked_not_for_production() -> None:
    for path in (KUBERNETES / "try-postgres").iterdir():
        assert "NOT FOR PRODUCTION" in path.read_text(), path.name


def test_containers_are_pinned_non_root_and_bounded() -> None:
    for path, resource in manifests():
        if "template" not in resource.get("spec", {}):
            continue
        spec = pod_spec(resource)
        assert spec["securityContext"]["runAsNonRoot"] is True, path.name
        assert spec.get("automountServiceAccountToken") is False, path.name
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, path.name
            assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], path.name
            image = container["image"]
            if image not in (SERVICE_IMAGE, WORKER_IMAGE):  # those are pinned by the kustomization
                assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.-]+)?", image), f"{path.name}: {image}"
    found = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None
    version = found.group(1)
    tags = {i["name"]: i["newTag"] for i in load_yaml(KUBERNETES / KUSTOMIZATION)["images"]}
    assert tags == {SERVICE_IMAGE: version, WORKER_IMAGE: version}
