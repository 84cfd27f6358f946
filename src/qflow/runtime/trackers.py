"""Pick the trackers a run reports to from the resolved config's ``tracker`` key.

``tracker`` is a name (``mlflow``), a list of names, a table with a ``name`` and the tracker's
options (``{name: mlflow, tracking_uri: http://127.0.0.1:5000, experiment: churn}``) or a list
of those. ``filetracker``, QFlow's own metadata store, is always on.

Every tracker comes from the plugin registry: ``filetracker`` from QFlow's ``builtin``
plugin, ``mlflow`` and ``wandb`` from its ``builtin-trackers`` plugin (imported only when a
run uses them), others from third-party plugins' ``register_trackers`` hook. A tracker
factory is called with ``project_root=`` and ``strict=`` when it accepts them, and the
options.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError, did_you_mean

BUILTIN_TRACKER = "filetracker"


def known_trackers() -> list[str]:
    """Every tracker name the config may use, built-ins first."""
    from qflow.plugins.registry import plugin_registry

    return plugin_registry().names("trackers")


def tracker_factory(name: str) -> Callable[..., object]:
    """The factory registered for ``name``; ``ConfigError`` listing the known names if none."""
    from qflow.plugins.registry import plugin_registry

    try:
        return plugin_registry().factory("trackers", name)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc}\nHint: set tracker=filetracker|mlflow|wandb, or a list of them."
        ) from exc


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
