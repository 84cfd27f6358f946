"""``qflow models …``: register step outputs as model versions, alias, describe, serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from qflow.cli import console
from qflow.cli.options import JsonOption, ProjectOption, parse_tags

if TYPE_CHECKING:
    from qflow.registry.builtin import QFlowRegistry
    from qflow.registry.mlflow_registry import MlflowRegistry
    from qflow.store.metadata.records import AliasChange, ModelVersion

app = typer.Typer(
    name="models",
    help="Model registry: versions, aliases, signatures, serving.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
RefArgument = Annotated[
    str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or NAME (the latest version).")
]


RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="qflow or mlflow (default: mlflow when the project's MLflow tracker config sets "
        "registry_uri, else qflow).",
    ),
]


def _registry(project: Any, registry: str | None = None) -> QFlowRegistry | MlflowRegistry:
    from qflow.registry.api import configured

    return configured(project, registry)


def version_json(v: ModelVersion) -> dict[str, Any]:
    return {
        "name": v.name,
        "version": v.version,
        "aliases": list(v.aliases),
        "run_id": v.run_id,
        "step": v.step,
        "output": v.output,
        "artifact_key": v.artifact_key,
        "type": v.type_name,
        "serializer": v.serializer,
        "size": v.size,
        "pickled": v.pickled,
        "signature": v.signature,
        "environment": v.environment,
        "environment_hash": v.environment_hash,
        "description": v.description,
        "tags": v.tags,
        "created_at": v.created_at,
        "created_by": v.created_by,
    }


def _change_json(c: AliasChange) -> dict[str, Any]:
    return {
        "alias": c.alias,
        "version": c.version,
        "previous_version": c.previous_version,
        "who": c.who,
        "when": c.changed_at,
    }


@app.command("register")
def register(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    step_output: Annotated[
        str, typer.Argument(help="STEP or STEP.OUTPUT: the step output holding the model.")
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Registered model name.")],
    description: Annotated[
        str | None, typer.Option("--description", "-d", help="What this version is.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="key=value (repeatable).")] = None,
    as_json: JsonOption = False,
    registry: RegistryOption = None,
    project: ProjectOption = None,
) -> None:
    """Register a step output of a run as the next version of model NAME."""
    version = _registry(project, registry).register(
        run_id, step_output, name=name, description=description, tags=parse_tags(tag)
    )
    if as_json:
        console.print_json(version_json(version))
        return
    console.out.print(
        f"Registered [bold]{version.name}[/] version [bold]{version.version}[/] "
        f"from run {version.run_id} step {version.step}.{version.output}"
        f"{' [yellow](pickle)[/]' if version.pickled else ''}"
    )


@app.command("list")
def list_models(
    as_json: JsonOption = False, registry: RegistryOption = None, project: ProjectOption = None
) -> None:
    """List registered models with their latest version and aliases."""
    from rich.table import Table

    models = _registry(project, registry).models()
    if as_json:
        console.print_json(
            [
                {
                    "name": m.name,
                    "latest_version": m.latest_version,
                    "aliases": m.aliases,
                    "description": m.description,
                    "tags": m.tags,
                    "created_at": m.created_at,
                }
                for m in models
            ]
        )
        return
    if not models:
        console.err.print("No registered models. Add one: qflow models register RUN STEP --name N")
        return
    table = Table(box=None, header_style="bold")
    for column in ("model", "latest", "aliases", "description"):
        table.add_column(column)
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(m.name, str(m.latest_version or "-"), aliases, m.description or "")
    console.out.print(table)


@app.command("show")
def show(
    ref: RefArgument,
    as_json: JsonOption = False,
    registry: RegistryOption = None,
    project: ProjectOption = None,
) -> None:
    """Show a model's versions (NAME) or one version in full (NAME/3, NAME@production)."""
    models = _registry(project, registry)
    if "@" not in ref and "/" not in ref:
        _show_model(models, ref, as_json)
        return
    version = models.get(ref)
    if as_json:
        console.print_json(version_json(version))
        return
    _print_version(version)


def _show_model(registry: QFlowRegistry | MlflowRegistry, name: str, as_json: bool) -> None:
    from rich.table import Table

    versions = registry.versions(name)
    model = next((m for m in registry.models() if m.name == name), None)
    if model is None:
        from qflow.errors import ModelNotFoundError

        raise ModelNotFoundError(f"No registered model {name!r} in {registry!r}.")
    if as_json:
        console.print_json(
            {
                "name": name,
                "description": model.description,
                "tags": model.tags,
                "aliases": model.aliases,
                "versions": [version_json(v) for v in versions],
            }
        )
        return
    console.out.print(f"[bold]{name}[/]  {model.description or ''}")
    if model.tags:
        console.out.print(f"tags: {model.tags}")
    table = Table(box=None, header_style="bold")
    for column in ("version", "aliases", "run", "step", "type", "created", "by", "description"):
        table.add_column(column)
    for v in versions:
        kind = v.type_name + (" (pickle)" if v.pickled else "")
        table.add_row(
            str(v.version),
            ", ".join(v.aliases),
            v.run_id,
            f"{v.step}.{v.output}",
            kind,
            console.when(v.created_at),
            v.created_by or "",
            v.description or "",
        )
    console.out.print(table)


def _print_version(v: ModelVersion) -> None:
    from qflow.registry.signature import Signature

    lines = [
        f"[bold]{v.name}[/] version [bold]{v.version}[/]"
        + (f"  aliases: {', '.join(v.aliases)}" if v.aliases else ""),
        f"run:         {v.run_id}  step {v.step}  output {v.output}",
        f"artifact:    {v.artifact_key}  {v.size} bytes  {v.serializer}  {v.type_name}",
        f"created:     {console.when(v.created_at)} by {v.created_by}",
        "signature:   "
        + (Signature.from_dict(v.signature).describe() if v.signature else "(none)"),
        f"environment: {v.environment_hash[:12]}  "
        + ", ".join(f"{k}={val}" for k, val in sorted(v.environment.items())),
    ]
    if v.pickled:
        lines.append(
            "[yellow]pickled:     yes — loading it runs pickle; load only models you trust "
            "(QFlow checks the sha256 first).[/]"
        )
    if v.description:
        lines.append(f"description: {v.description}")
    if v.tags:
        lines.append(f"tags:        {v.tags}")
    for line in lines:
        console.out.print(line)


@app.command("alias")
def alias(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production.")],
    version: Annotated[
        int | None, typer.Argument(help="Version to point at (omit with --delete).")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    as_json: JsonOption = False,
    registry: RegistryOption = None,
    project: ProjectOption = None,
) -> None:
    """Point ALIAS of model NAME at VERSION (the move is kept in the alias history)."""
    models = _registry(project, registry)
    if delete:
        change = models.delete_alias(name, alias_name)
    elif version is None:
        raise typer.BadParameter("give the VERSION to point at, or --delete")
    else:
        change = models.set_alias(name, alias_name, version)
    if as_json:
        console.print_json(_change_json(change))
        return
    before = change.previous_version if change.previous_version is not None else "-"
    after = change.version if change.version is not None else "(removed)"
    console.out.print(f"{name}@{alias_name}: {before} → {after}")


@app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    alias_name: Annotated[str | None, typer.Argument(metavar="[ALIAS]")] = None,
    as_json: JsonOption = False,
    registry: RegistryOption = None,
    project: ProjectOption = None,
) -> None:
    """Every alias move of model NAME: who, when, from which version to which."""
    from rich.table import Table

    changes = _registry(project, registry).alias_history(name, alias_name)
    if as_json:
        console.print_json([_change_json(c) for c in changes])
        return
    table = Table(box=None, header_style="bold")
    for column in ("when", "alias", "from", "to", "who"):
        table.add_column(column)
    for c in changes:
        table.add_row(
            console.when(c.changed_at),
            c.alias,
            "-" if c.previous_version is None else str(c.previous_version),
            "(removed)" if c.version is None else str(c.version),
            c.who or "",
        )
    console.out.print(table)


@app.command("describe")
def describe(
    ref: Annotated[str, typer.Argument(help="NAME (the model) or NAME/VERSION, NAME@ALIAS.")],
    text: Annotated[str, typer.Argument(help="The description.")],
    registry: RegistryOption = None,
    project: ProjectOption = None,
) -> None:
    """Set the description of a model or of one version."""
    _registry(project, registry).describe(ref, text)


@app.command("tag")
def tag(
    ref: Annotated[str, typer.Argument(help="NAME (the model) or NAME/VERSION, NAME@ALIAS.")],
    tags: Annotated[list[str], typer.Argument(help="key=value pairs.")],
    registry: RegistryOption = None,
    project: ProjectOption = None,
) -> None:
    """Tag a model or one version."""
    _registry(project, registry).set_tags(ref, parse_tags(tags))


@app.command("serve")
def serve(
    ref: RefArgument,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 8000,
    pin: Annotated[
        bool, typer.Option("--pin", help="Keep the version loaded at start; ignore alias moves.")
    ] = False,
    check_every: Annotated[
        float, typer.Option("--check-every", help="Seconds between alias checks.")
    ] = 2.0,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body in bytes.")] = 16
    * 1024
    * 1024,
    registry: RegistryOption = None,
    project: ProjectOption = None,
) -> None:
    """Serve a model over HTTP: POST /predict, GET /health, GET /metadata."""
    from qflow.serving.server import serve as run_server

    def ready(name: str, version: int) -> None:
        console.err.print(
            f"Serving [bold]{name}[/] version {version} ({ref}) on http://{host}:{port} "
            f"{'(pinned)' if pin else ''}"
        )

    run_server(
        ref,
        registry=registry,
        host=host,
        port=port,
        pin=pin,
        check_every=check_every,
        max_body_bytes=max_body,
        project_dir=project,
        on_ready=ready,
    )
