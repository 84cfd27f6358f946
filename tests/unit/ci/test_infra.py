from __future__ import annotations

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
        "README.md",
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
