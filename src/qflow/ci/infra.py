"""``qflow infra init aws|gcp``: Terraform for the team stack, copied from package data.

The files come from ``qflow/ci/templates/terraform/<cloud>`` plus ``common`` (the Kubernetes
part shared by every cloud: KubeRay and the QFlow server, the team image's name, and the
``Dockerfile`` that builds that image with QFlow and the project inside). Nothing is
templated: every choice is a Terraform variable with a description, so the files can be read
and diffed as they are.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from qflow.ci.files import write_atomic
from qflow.errors import QFlowError, did_you_mean

CLOUDS = ("aws", "gcp")


def template_files(cloud: str) -> dict[str, str]:
    """File name → text of the Terraform stack for ``cloud``."""
    if cloud not in CLOUDS:
        raise QFlowError(
            f"Unknown cloud {cloud!r}; QFlow has Terraform for: {', '.join(CLOUDS)}."
            f"{did_you_mean(cloud, CLOUDS)}"
        )
    root = resources.files("qflow.ci").joinpath("templates", "terraform")
    files: dict[str, str] = {}
    for folder in ("common", cloud):
        for item in root.joinpath(folder).iterdir():
            if item.is_file() and (
                item.name.endswith((".tf", ".md")) or item.name.startswith("Dockerfile")
            ):
                files[item.name] = item.read_text(encoding="utf-8")
    return dict(sorted(files.items()))


def write_infra(cloud: str, output: Path, *, force: bool = False) -> list[Path]:
    """Write the stack into ``output``; refuse to overwrite existing files without ``force``."""
    files = template_files(cloud)
    existing = [name for name in files if (output / name).exists()]
    if existing and not force:
        raise QFlowError(
            f"{output} already has {', '.join(existing)}; nothing was written. "
            "Hint: --force replaces them, or choose another folder with -o."
        )
    written = []
    for name, text in files.items():
        write_atomic(output / name, text)
        written.append(output / name)
    return written
