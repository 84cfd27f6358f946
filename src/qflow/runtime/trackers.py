"""Pick the trackers a run reports to from the resolved config's ``tracker`` key.

``tracker`` is a name (``mlflow``), a list of names, a table with a ``name`` and the tracker's
options (``{name: mlflow, tracking_uri: http://127.0.0.1:5000, experiment: churn}``) or a list
of those. ``filetracker``, QFlow's own metadata store, is always on and needs no plugin.

The built-in trackers are a name → factory table here, not ``qflow`` entry points, because an
entry point is registered on every run, and these must only be on when the config asks for
them (and must not import mlflow or wandb before then). Other packages add trackers through
the entry-point group ``qflow.trackers``: a factory called with ``project_root=`` and the
options.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError, did_you_mean

BUILTIN_TRACKER = "filetracker"
ENTRY_POINT_GROUP = "qflow.trackers"

_FACTORIES: dict[str, str] = {
    "mlflow": "qflow.integrations.mlflow:MlflowTracker",
    "wandb": "qflow.integrations.wandb:WandbTracker",
}


def _entry_points() -> dict[str, Any]:
    """Tracker factories by name: entry points ``qflow.trackers``, then plugins' answers to
    a ``register_trackers`` hook where the plugin manager has one (first one wins)."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    from qflow.plugins.manager import create_plugin_manager

    hook = getattr(create_plugin_manager().hook, "register_trackers", None)
    for provided in hook() if hook is not None else []:
        for name, factory in (provided or {}).items():
            found.setdefault(name, factory)
    return found


def known_trackers() -> list[str]:
    """Every tracker name the config may use, built-ins first."""
    extra = sorted(set(_entry_points()) - set(_FACTORIES) - {BUILTIN_TRACKER})
    return [BUILTIN_TRACKER, *_FACTORIES, *extra]


def tracker_factory(name: str) -> Callable[..., object]:
    """The factory registered for ``name``; ``ConfigError`` listing the known names if none."""
    if name in _FACTORIES:
        module, _, attr = _FACTORIES[name].partition(":")
        factory: Callable[..., object] = getattr(importlib.import_module(module), attr)
        return factory
    found = _entry_points().get(name)
    if found is None:
        known = known_trackers()
        raise ConfigError(
            f"Unknown tracker {name!r}. Known trackers: {', '.join(known)}."
            f"{did_you_mean(name, known)}\n"
            "Hint: set tracker=filetracker|mlflow|wandb, or a list of them."
        )
    loaded: Callable[..., object] = found.load() if hasattr(found, "load") else found
    return loaded


def tracker_specs(value: object) -> list[dict[str, Any]]:
    """The ``tracker`` config value as a list of ``{"name": ..., **options}`` tables."""
    if value is None:
        return []
    items: Sequence[object]
    if isinstance(value, str | Mapping):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ConfigError(
            f"Config key 'tracker' is {value!r}; it must be a tracker name, a list of names, "
            "or a table with a 'name' (for example {name: mlflow, tracking_uri: ...})."
        )
    specs: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            specs.extend({"name": part.strip()} for part in item.split(",") if part.strip())
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            specs.append({str(k): v for k, v in item.items()})
        else:
            raise ConfigError(
                f"Tracker entry {item!r} has no name. Hint: write it as a name (mlflow) or a "
                "table with a 'name' key ({name: mlflow, tracking_uri: ...})."
            )
    return specs


def create_tracker(
    spec: Mapping[str, Any], project_root: Path, *, strict: bool = False
) -> object | None:
    """One tracker from ``{"name": ..., **options}``; None for the built-in filetracker."""
    options = {k: v for k, v in spec.items() if k != "name"}
    name = str(spec["name"])
    if name == BUILTIN_TRACKER:
        if options:
            raise ConfigError(
                f"Tracker {BUILTIN_TRACKER!r} takes no options; got {', '.join(options)}. "
                "Hint: it is QFlow's own store; set QFLOW_STORE to move it."
            )
        return None
    factory = tracker_factory(name)
    parameters = inspect.signature(factory).parameters
    accepted = [p for p in parameters if p not in ("project_root", "strict")]
    takes_options = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for option in options:
        if option in ("project_root", "strict") or not (takes_options or option in parameters):
            raise ConfigError(
                f"Tracker {name!r} has no option {option!r}; its options are: "
                f"{', '.join(accepted) or '(none)'}.{did_you_mean(option, accepted)}"
            )
    context = {"project_root": project_root, "strict": strict}
    context = {k: v for k, v in context.items() if takes_options or k in parameters}
    return factory(**context, **options)


def trackers_from_config(
    config: Mapping[str, Any], project_root: Path, *, strict: bool = False
) -> list[object]:
    """The tracker plugins the config's ``tracker`` key selects (none for filetracker).

    With ``strict``, a tracker raises ``TrackerError`` when it fails instead of warning once
    and switching itself off (``qflow sync`` uses this).
    """
    trackers = []
    for spec in tracker_specs(config.get("tracker")):
        tracker = create_tracker(spec, project_root, strict=strict)
        if tracker is not None:
            trackers.append(tracker)
    return trackers
