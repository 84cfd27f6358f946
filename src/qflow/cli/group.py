"""The ``qflow`` command group: each command's module is imported only when it runs.

``qflow runs`` imports ``qflow.cli.commands.runs`` and nothing of the other commands (rich,
SQLAlchemy, Hydra...). ``qflow --help`` imports no command at all: it lists the names and the
one-line helps kept in ``Command.help`` (a test checks them against the commands' docstrings).
Commands that plugins add (``register_commands``) are looked up only for a name QFlow does not
have, and for the help listing.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperGroup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Command:
    """A built-in command: where it lives (``module:attribute``, a function or a
    ``typer.Typer`` group) and its one-line help for ``qflow --help``."""

    target: str
    help: str
    context: str = ""
    """Name of a ``context_settings`` mapping in the command's module, if it has one."""

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(f"qflow.cli.commands.{module}"), attribute)

    def context_settings(self) -> dict[str, Any] | None:
        if not self.context:
            return None
        module = importlib.import_module(f"qflow.cli.commands.{self.target.partition(':')[0]}")
        settings: dict[str, Any] = getattr(module, self.context)
        return settings


def _typer() -> typer.Typer:
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def build(name: str, target: object, context_settings: Mapping[str, Any] | None = None) -> Any:
    """The click command typer makes of ``target`` (a function or a ``typer.Typer``)."""
    holder = _typer()
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    elif callable(target):
        holder.command(name, context_settings=dict(context_settings or {}) or None)(target)
    else:
        raise TypeError(f"command {name!r} is {target!r}, neither a function nor a typer.Typer")
    holder.callback()(_no_options)
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    return group.commands[name]


def _no_options() -> None:
    """A group callback without options (so typer builds a group)."""


class LazyGroup(TyperGroup):
    """The top-level group: built-in commands from ``COMMANDS`` on first use, then plugins'."""

    builtin: Mapping[str, Command] = {}

    def _plugin_commands(self) -> dict[str, object]:
        from qflow.plugins.registry import plugin_registry

        found: dict[str, object] = {}
        for name, item in plugin_registry().provided("commands").items():
            if name in self.builtin:
                logger.warning(
                    "QFlow plugin %r adds a command %r, which QFlow already has; it is skipped.",
                    item.plugin,
                    name,
                )
            elif isinstance(item.value, typer.Typer) or callable(item.value):
                found[name] = item.value
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.builtin, *self._plugin_commands()]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        known = self.commands.get(cmd_name)
        if known is not None:
            return known
        spec = self.builtin.get(cmd_name)
        if spec is not None:
            command = build(cmd_name, spec.load(), spec.context_settings())
        else:
            target = self._plugin_commands().get(cmd_name)
            if target is None:
                return None
            command = build(cmd_name, target)
        self.commands[cmd_name] = command
        return command  # type: ignore[no-any-return]

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click's resolution; an unknown name gets "Did you mean" from every known command
        (typer's own suggestion sees only the commands loaded so far)."""
        try:
            return self._click_resolve_command(ctx, args)
        except click.exceptions.UsageError as exc:
            matches = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches:
                suggestions = ", ".join(f"{m!r}" for m in matches)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            spec = self.builtin.get(name)
            if spec is not None:
                rows.append((name, _shorten(spec.help, limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _shorten(text: str, limit: int) -> str:
    """click's short help: the first sentence, cut at a word with '...' to fit ``limit``."""
    from typer._click.utils import make_default_short_help

    return make_default_short_help(text, limit)
