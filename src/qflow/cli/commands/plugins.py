"""``qflow plugins``: the loaded plugins, where they come from, what they add; their commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qflow.cli import console
from qflow.cli.options import JsonOption

if TYPE_CHECKING:
    from qflow.plugins.manager import QFlowPluginManager


def _provides(manager: QFlowPluginManager) -> dict[str, dict[str, list[str]]]:
    from qflow.plugins.extensions import KINDS, collect

    table: dict[str, dict[str, list[str]]] = {}
    for kind in KINDS:
        for item in collect(kind, manager):
            table.setdefault(item.plugin, {}).setdefault(kind, []).append(item.name)
    return table


def _hooks(manager: QFlowPluginManager, plugin: object) -> list[str]:
    callers = manager.get_hookcallers(plugin) or []
    return sorted(c.name for c in callers if not c.name.startswith("register_"))


def plugins(as_json: JsonOption = False) -> None:
    """List the loaded plugins, where each comes from and what it adds."""
    from rich.table import Table

    from qflow.plugins.manager import default_plugin_manager

    manager = default_plugin_manager()
    provides = _provides(manager)
    rows: list[dict[str, Any]] = []
    for name, plugin in manager.list_name_plugin():
        if plugin is None:
            continue
        source = manager.sources.get(name)
        rows.append(
            {
                "name": name,
                "status": "loaded",
                "origin": source.origin if source else "registered in code",
                "target": source.target if source else repr(plugin),
                "path": source.path if source else "",
                "provides": provides.get(name, {}),
                "hooks": _hooks(manager, plugin),
                "error": None,
            }
        )
    for failed in manager.failures:
        row: dict[str, Any] = {"name": failed.name, "status": "failed", "origin": failed.origin}
        row.update(target=failed.target, path="", provides={}, hooks=[], error=failed.error)
        rows.append(row)
    if as_json:
        console.print_json(rows)
        return
    table = Table(box=None, header_style="bold")
    for column in ("plugin", "status", "from", "module", "adds"):
        table.add_column(column)
    for row in rows:
        adds = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items())
        if row["hooks"]:
            adds = "; ".join(filter(None, [adds, f"hooks: {', '.join(row['hooks'])}"]))
        status = console.status("succeeded" if row["status"] == "loaded" else "failed")
        table.add_row(
            row["name"],
            status.replace("succeeded", "loaded"),
            row["origin"],
            row["path"] or row["target"],
            row["error"] or adds,
        )
    console.out.print(table)
