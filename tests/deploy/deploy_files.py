"""The deployment files as the deploy tests read them: Dockerfiles (a small parser: instructions,
stages, what a stage COPYs where), .dockerignore, docker-compose.yml and the Kubernetes manifests
under deploy/kubernetes, plus the commands and environments of every container they start.

Example:
    stages = read_dockerfile(ROOT / "worker.Dockerfile")
    stages[-1].user          # "10001:10001"
    [c.argv for c in containers()]   # every pbt-service / pbt-worker command line, with its env
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICE_DOCKERFILE = ROOT / "Dockerfile"
WORKER_DOCKERFILE = ROOT / "worker.Dockerfile"
DOCKERFILES = (SERVICE_DOCKERFILE, WORKER_DOCKERFILE)
COMPOSE = ROOT / "docker-compose.yml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"
SERVICE_IMAGE, WORKER_IMAGE = "pbt-service", "pbt-worker"
"""The image names the manifests use (kustomize's `images:` points them at a registry)."""


# ---------------------------------------------------------------- Dockerfiles


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: FROM, RUN, COPY, ..."""
    text: str
    """The arguments, continuations joined."""
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of `CMD ["a", "b"]`, or None for the shell form."""
        if not self.text.startswith("["):
            return None
        value = json.loads(self.text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    @property
    def user(self) -> str | None:
        users = self.all("USER")
        return users[-1].text if users else None

    def copies(self) -> Iterator[tuple[list[str], str, str | None, str]]:
        """(sources, destination, --from stage or None, the WORKDIR then) of each COPY/ADD."""
        workdir = "/"
        for instruction in self.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / instruction.text)
            elif instruction.keyword in ("COPY", "ADD"):
                words = instruction.exec_form or shlex.split(instruction.text)
                flags = [w for w in words if w.startswith("--")]
                paths = [w for w in words if not w.startswith("--")]
                origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
                yield paths[:-1], paths[-1], origin, workdir

    def workdir(self) -> str:
        workdir = "/"
        for instruction in self.all("WORKDIR"):
            workdir = str(PurePosixPath(workdir) / instruction.text)
        return workdir


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile, each with its instructions. Comments and blank lines go,
    `\\` continuations are joined; an instruction before the first FROM (other than ARG) and an
    unknown keyword are errors."""
    known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
             "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        continued = line.endswith("\\")
        pending.append(line[:-1].strip() if continued else line)
        if continued:
            continue
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = joined.partition(" ")
        keyword = keyword.upper()
        if keyword not in known:
            raise ValueError(f"line {start}: unknown instruction {keyword}")
        instruction = Instruction(keyword, arguments.strip(), start)
        if keyword == "FROM":
            words = instruction.text.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            if len(words) not in (1, 3) or (len(words) == 3 and name is None):
                raise ValueError(f"line {start}: FROM IMAGE [AS NAME], got {instruction.text!r}")
            stages.append(Stage(words[0], name))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"line {start}: {keyword} before the first FROM")
        else:
            stages[-1].instructions.append(instruction)
    if pending:
        raise ValueError("the last instruction ends with a continuation")
    return stages


def read_dockerfile(path: Path) -> list[Stage]:
    return parse_dockerfile(path.read_text(encoding="utf-8"))


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether the build context leaves `relative` (or a folder above it) out, as Docker matches
    .dockerignore (`**` any folders; no `!` exceptions are used here)."""
    assert not any(p.startswith("!") for p in patterns), "exceptions are not modelled"
    parts = PurePosixPath(relative).parts
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.split("/")[-1], pattern[3:]):
                return True
    return False


def image_files(stage: Stage) -> dict[str, Path]:
    """Where the stage's COPYs from the build context put repository paths: container path ->
    repository path (folders included)."""
    placed: dict[str, Path] = {}
    for sources, destination, origin, workdir in stage.copies():
        if origin is not None:
            continue
        target = PurePosixPath(workdir) / destination
        for source in sources:
            into_folder = destination.endswith("/") or len(sources) > 1
            where = target / PurePosixPath(source).name if into_folder else target
            placed[str(where)] = ROOT / source
    return placed


def in_image(stage: Stage, container_path: str) -> Path | None:
    """The repository file at `container_path` of the image (relative paths from its WORKDIR), or
    None when no COPY puts one there."""
    path = PurePosixPath(stage.workdir()) / container_path
    for placed, source in image_files(stage).items():
        if str(path) == placed:
            return source
        if str(path).startswith(placed + "/") and source.is_dir():
            return source / str(path)[len(placed) + 1:]
    return None


# ---------------------------------------------------------------- compose and Kubernetes


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBERNETES.rglob("*.yaml") if p.name != KUSTOMIZATION)


def kustomizations() -> list[Path]:
    return sorted(KUBERNETES.rglob(KUSTOMIZATION))


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), path
    return loaded


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/kubernetes, with its file (one object a file)."""
    found = []
    for path in manifest_files():
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert len(documents) == 1, f"{path}: one resource per file, found {len(documents)}"
        found.append((path, documents[0]))
    return found


def manifest(kind: str, name: str) -> dict[str, Any]:
    matches = [m for _, m in manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} manifests"
    return matches[0]


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def secret_env_keys() -> set[str]:
    """The keys of the Secret that kustomize generates from secret.env (its template's keys)."""
    lines = (KUBERNETES / "secret.env.example").read_text(encoding="utf-8").splitlines()
    return {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}


# ---------------------------------------------------------------- containers


@dataclass(frozen=True)
class Container:
    """One container some deployment file starts: where, its command line, its environment (values
    from Secrets as `<secret:KEY>`), the image it runs and the ports it declares."""

    where: str
    argv: tuple[str, ...]
    env: dict[str, str]
    image: str
    ports: dict[str, int]

    @property
    def program(self) -> str:
        return self.argv[0] if self.argv else ""


_EXPANSION = re.compile(r"\$\((\w+)\)")


def expand(word: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion of command and args (unknown names stay as written)."""
    return _EXPANSION.sub(lambda m: env.get(m.group(1), m.group(0)), word)


def kubernetes_containers() -> Iterator[Container]:
    for path, resource in manifests():
        if "template" not in resource.get("spec", {}):
            continue
        for spec in pod_spec(resource)["containers"]:
            env: dict[str, str] = {}
            for item in spec.get("env", []):
                source = item.get("valueFrom", {})
                if "secretKeyRef" in source:
                    env[item["name"]] = f"<secret:{source['secretKeyRef']['key']}>"
                elif "fieldRef" in source:
                    env[item["name"]] = "0"  # the downward API: the pod's index, say
                else:
                    env[item["name"]] = str(item["value"])
            argv = tuple(expand(w, env) for w in [*spec.get("command", []), *spec.get("args", [])])
            ports = {p.get("name", str(p["containerPort"])): p["containerPort"] for p in spec.get("ports", [])}
            yield Container(f"{path.relative_to(ROOT)}:{spec['name']}", argv, env, spec["image"], ports)


def compose_containers() -> Iterator[Container]:
    for name, service in compose()["services"].items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: environment as a mapping"
        env = {k: str(v) for k, v in environment.items()}
        argv = tuple(service.get("command", []))
        yield Container(f"docker-compose.yml:{name}", argv, env, service["image"], {})


def dockerfile_containers() -> Iterator[Container]:
    for path in DOCKERFILES:
        final = read_dockerfile(path)[-1]
        env: dict[str, str] = {}
        for instruction in final.all("ENV"):
            words = shlex.split(instruction.text)
            env.update(dict(w.split("=", 1) for w in words))
        cmd = final.all("CMD")[-1].exec_form
        assert cmd is not None, f"{path.name}: CMD in exec form"
        ports = {p: int(p) for i in final.all("EXPOSE") for p in i.text.split()}
        yield Container(path.name, tuple(cmd), env, path.name, ports)


def containers() -> list[Container]:
    return [*dockerfile_containers(), *compose_containers(), *kubernetes_containers()]


def image_of(container: Container) -> Path:
    """The Dockerfile of the image a container runs."""
    if container.image in (SERVICE_IMAGE, WORKER_IMAGE):
        return SERVICE_DOCKERFILE if container.image == SERVICE_IMAGE else WORKER_DOCKERFILE
    if container.image.endswith("Dockerfile"):
        return ROOT / container.image
    name = container.image.split(":")[0]
    assert name in (SERVICE_IMAGE, WORKER_IMAGE), f"{container.where}: {container.image} is not a project image"
    return SERVICE_DOCKERFILE if name == SERVICE_IMAGE else WORKER_DOCKERFILE
