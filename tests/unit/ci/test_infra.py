from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

from qflow.ci.infra import template_files, write_infra
from qflow.errors import QFlowError


def clean(value: Any) -> Any:
    """python-hcl2's output without its quoting: ``'"x"'`` → ``'x'``, no ``__is_block__``."""
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(folder: Path) -> dict[str, dict[str, Any]]:
    parsed = {}
    for path in sorted(folder.glob("*.tf")):
        with open(path, encoding="utf-8") as handle:
            parsed[path.name] = clean(hcl2.load(handle))
    return parsed


def blocks(parsed: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """``resource``/``module``/… blocks of every file by ``type.name`` (or ``name``)."""
    found: dict[str, dict[str, Any]] = {}
    for document in parsed.values():
        for block in document.get(kind, []):
            for name, body in block.items():
                if kind in ("resource", "data"):
                    for label, inner in body.items():
                        found[f"{name}.{label}"] = inner
                else:
                    found[name] = body
    return found


def text(value: object) -> str:
    return str(value)


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_file_parses_and_is_wired(tmp_path: Path, cloud: str) -> None:
    written = write_infra(cloud, tmp_path / cloud)
    assert {p.name for p in written} >= {
        "versions.tf",
        "variables.tf",
        "storage.tf",
        "cluster.tf",
        "kubernetes.tf",
        "outputs.tf",
        "kubernetes_outputs.tf",
        "image.tf",
        "README.md",
        "Dockerfile",
        "Dockerfile.dockerignore",
    }
    parsed = parse(tmp_path / cloud)
    resources = blocks(parsed, "resource")
    variables = blocks(parsed, "variable")
    outputs = blocks(parsed, "output")
    locals_ = {
        k: v for doc in parsed.values() for block in doc.get("locals", []) for k, v in block.items()
    }

    # Documented variables and outputs.
    assert variables and all(v.get("description") for v in variables.values())
    assert outputs and all(o.get("description") for o in outputs.values())
    for name in ("artifacts_url", "database_url", "server_url", "ray_address", "bucket"):
        assert name in outputs
    assert outputs["database_url"]["sensitive"] is True

    # A bucket, a managed PostgreSQL, a cluster, KubeRay.
    if cloud == "aws":
        assert "aws_s3_bucket.artifacts" in resources
        database = resources["aws_db_instance.metadata"]
        assert database["engine"] == "postgres"
        assert "terraform-aws-modules/eks/aws" in text(blocks(parsed, "module")["eks"]["source"])
        assert locals_["artifacts_url"].startswith("s3://${aws_s3_bucket.artifacts.bucket}")
        assert "aws_db_instance.metadata.address" in locals_["database_url"]
        assert "random_password.db.result" in locals_["database_url"]
    else:
        assert "google_storage_bucket.artifacts" in resources
        database = resources["google_sql_database_instance.metadata"]
        assert database["database_version"].startswith("POSTGRES")
        assert "google_container_cluster.qflow" in resources
        assert locals_["artifacts_url"].startswith("gs://${google_storage_bucket.artifacts.name}")
        assert "google_sql_database_instance.metadata.private_ip_address" in locals_["database_url"]
    operator = resources["helm_release.kuberay_operator"]
    assert operator["chart"] == "kuberay-operator"
    assert resources["helm_release.ray_cluster"]["chart"] == "ray-cluster"

    # The server gets the database URL and the bucket, through the secret it loads.
    secret = resources["kubernetes_secret.qflow"]["data"]
    assert secret["QFLOW_STORE"] == "${local.database_url}"
    assert secret["QFLOW_ARTIFACTS"] == "${local.artifacts_url}"
    deployment = resources["kubernetes_deployment.qflow_server"]
    container = deployment["spec"][0]["template"][0]["spec"][0]["container"][0]
    args = container["args"]
    assert args[:2] == ["qflow", "server"]
    assert args[args.index("--store") + 1] == "$(QFLOW_STORE)"
    assert args[args.index("--artifacts") + 1] == "$(QFLOW_ARTIFACTS)"
    assert "kubernetes_secret.qflow.metadata[0].name" in text(container["env_from"])
    assert container["image"] == "${var.qflow_image}"
    # Ray's head and workers run the same team image (QFlow and the project inside).
    ray_values = text(resources["helm_release.ray_cluster"]["values"])
    assert "local.qflow_image_parts.repository" in ray_values
    assert "local.qflow_image_parts.tag" in ray_values
    assert "ray_image" not in ray_values and "split(" not in ray_values
    assert "ray_image" not in variables and "qflow_image" in variables
    # The Kubernetes API is reachable only from the networks named.
    assert "api_allowed_cidrs" in variables and "default" not in variables["api_allowed_cidrs"]
    if cloud == "aws":
        eks = blocks(parsed, "module")["eks"]
        assert eks["cluster_endpoint_public_access_cidrs"] == "${var.api_allowed_cidrs}"
        assert eks["cluster_endpoint_public_access"] == "${length(var.api_allowed_cidrs) > 0}"
    else:
        cluster = resources["google_container_cluster.qflow"]
        networks = text(cluster["master_authorized_networks_config"])
        assert "var.api_allowed_cidrs" in networks
        # A fresh project: every API the stack calls is enabled before anything uses it.
        services = resources["google_project_service.enabled"]
        enabled = text(services["for_each"])
        for api in ("compute", "container", "sqladmin", "servicenetworking", "iam", "storage"):
            assert f"{api}.googleapis.com" in enabled
        assert services["disable_on_destroy"] is False
        for name in (
            "google_compute_network.qflow",
            "google_container_cluster.qflow",
            "google_sql_database_instance.metadata",
            "google_service_networking_connection.sql",
            "google_service_account.qflow",
            "google_storage_bucket.artifacts",
        ):
            assert "google_project_service.enabled" in text(resources[name]["depends_on"]), name
    # The pods' identity may use the bucket (IRSA / Workload Identity).
    account = resources["kubernetes_service_account.qflow"]["metadata"][0]
    assert account["annotations"] == "${local.service_account_annotations}"


def test_unknown_cloud_and_existing_files(tmp_path: Path) -> None:
    with pytest.raises(QFlowError, match="Did you mean: gcp"):
        template_files("gpc")
    write_infra("aws", tmp_path)
    (tmp_path / "storage.tf").write_text("# mine\n")
    with pytest.raises(QFlowError, match="nothing was written"):
        write_infra("aws", tmp_path)
    assert (tmp_path / "storage.tf").read_text() == "# mine\n"
    write_infra("aws", tmp_path, force=True)
    assert "aws_s3_bucket" in (tmp_path / "storage.tf").read_text()


TERRAFORM = shutil.which("terraform")
REFERENCE = re.compile(
    r"(?<![\w.])(var|local|module|data|[a-z]+_[a-z0-9_]+)\.([A-Za-z_][A-Za-z0-9_-]*)"
    r"(?:\.([A-Za-z_][A-Za-z0-9_-]*))?"
)
_NOT_REFERENCES = {"each", "count", "path", "self", "terraform", "cidr_blocks"}
RESOURCE_TYPE = r"(aws|google|kubernetes|helm|random)_\w+"


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_every_reference_resolves(tmp_path: Path, cloud: str) -> None:
    """Every var.X, local.X, module.X, data.T.N and T.N in the stack is declared in it."""
    write_infra(cloud, tmp_path)
    parsed = parse(tmp_path)
    declared = {f"var.{n}" for n in blocks(parsed, "variable")}
    declared |= {f"module.{n}" for n in blocks(parsed, "module")}
    declared |= {f"data.{n}" for n in blocks(parsed, "data")}
    declared |= set(blocks(parsed, "resource"))
    declared |= {
        f"local.{k}" for doc in parsed.values() for block in doc.get("locals", []) for k in block
    }
    found: set[str] = set()
    for path in tmp_path.glob("*.tf"):
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
        for kind, name, inner in REFERENCE.findall(code):
            if kind in _NOT_REFERENCES:
                continue
            if kind == "data":
                found.add(f"data.{name}.{inner}")
            elif kind in ("var", "local", "module") or re.fullmatch(RESOURCE_TYPE, kind):
                found.add(f"{kind}.{name}")
    assert found, "no references found: the pattern is broken"
    assert {"var.qflow_image", "local.qflow_image_parts", "local.artifacts_url"} <= found
    assert len(found) > 30
    assert sorted(found - declared) == []


def terraform(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM, "terraform is missing (https://developer.hashicorp.com/terraform/install)"
    return subprocess.run(
        [TERRAFORM, f"-chdir={folder}", *args, "-no-color"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_terraform_fmt_accepts_the_stack(tmp_path: Path, cloud: str) -> None:
    write_infra(cloud, tmp_path)
    done = terraform(tmp_path, "fmt", "-check", "-diff", "-recursive")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def image_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """image.tf alone (it needs no provider), with its parsed name as an output."""
    folder = tmp_path_factory.mktemp("image")
    (folder / "image.tf").write_text(template_files("aws")["image.tf"])
    (folder / "out.tf").write_text('output "parts" {\n  value = local.qflow_image_parts\n}\n')
    done = terraform(folder, "init", "-input=false", "-backend=false")
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


DIGEST = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("image", "repository", "tag"),
    [
        ("ghcr.io/team/project:1.0", "ghcr.io/team/project", "1.0"),
        ("registry:5000/team/project:2.1", "registry:5000/team/project", "2.1"),
        ("registry:5000/team/project", "registry:5000/team/project", "latest"),
        ("project", "project", "latest"),
        (f"ghcr.io/team/project@sha256:{DIGEST}", "ghcr.io/team/project@sha256", DIGEST),
        (f"registry:5000/p:1.0@sha256:{DIGEST}", "registry:5000/p:1.0@sha256", DIGEST),
    ],
)
def test_terraform_parses_image_names(
    image_module: Path, tmp_path: Path, image: str, repository: str, tag: str
) -> None:
    """Terraform itself evaluates the parsing; the chart writes "<repository>:<tag>" back."""
    state = tmp_path / "state.tfstate"
    done = terraform(
        image_module, "apply", "-auto-approve", "-input=false", f"-state={state}",
        f"-var=qflow_image={image}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shown = terraform(image_module, "output", f"-state={state}", "-json", "parts")
    parts = json.loads(shown.stdout)
    assert parts == {"repository": repository, "tag": tag}
    assert f"{parts['repository']}:{parts['tag']}" == (
        image if ":" in image.split("/")[-1] else f"{image}:latest"
    )


@pytest.mark.parametrize("image", ["Bad Image", "ghcr.io/team/project@sha256:short", ""])
def test_terraform_refuses_bad_image_names(image_module: Path, tmp_path: Path, image: str) -> None:
    done = terraform(
        image_module,
        "plan",
        "-input=false",
        f"-state={tmp_path / 's'}",
        f"-var=qflow_image={image}",
    )
    assert done.returncode == 1
    assert "qflow_image must look like registry.example.com:5000/team/project:1.0" in done.stderr


def test_terraform_refuses_bad_api_cidrs(tmp_path: Path) -> None:
    """The api_allowed_cidrs checks, evaluated by terraform on the variable as written."""
    source = template_files("gcp")["variables.tf"]
    start = source.index('variable "api_allowed_cidrs"')
    (tmp_path / "variables.tf").write_text(source[start:])
    assert terraform(tmp_path, "init", "-input=false", "-backend=false").returncode == 0
    cases = {
        '["203.0.113.0/24", "198.51.100.7/32"]': None,
        "[]": None,
        '["0.0.0.0/0"]': "must not open the Kubernetes API to the whole internet",
        '["office"]': "must be an IPv4 CIDR block",
    }
    for value, message in cases.items():
        done = terraform(tmp_path, "plan", "-input=false", f"-var=api_allowed_cidrs={value}")
        if message is None:
            assert done.returncode == 0, done.stdout + done.stderr
        else:
            assert done.returncode == 1 and message in done.stderr, done.stderr


def test_dockerfile_builds_the_team_image_with_qflow_and_the_project() -> None:
    files = template_files("gcp")
    lines = [line for line in files["Dockerfile"].splitlines() if line and line[0] != "#"]
    instructions = [line.split()[0] for line in lines if not line.startswith(" ")]
    assert instructions == [
        "ARG", "FROM", "RUN", "RUN", "ENV", "WORKDIR", "ARG", "COPY", "RUN", "USER",
    ]  # fmt: skip
    assert lines[1] == "FROM python:${PYTHON_VERSION}-slim-bookworm"
    install = " ".join(files["Dockerfile"].split("COPY --chown=ray:ray . .")[1].split())
    assert 'python -m pip install "qflow-framework[${QFLOW_EXTRAS}]" .' in install
    assert "ARG QFLOW_EXTRAS=server,postgres,ray,s3,gcs" in lines
    assert "wget" in files["Dockerfile"]  # KubeRay's probes
    assert files["Dockerfile"].count("-f infra/<cloud>/Dockerfile") == 1
    ignored = files["Dockerfile.dockerignore"].splitlines()
    assert {".git", ".qflow", ".venv", "infra"} <= set(ignored)
