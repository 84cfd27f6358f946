"""``LAUNCH: workflow key=value …`` pull-request comments: parsed, checked, turned into argv.

A comment is untrusted text. It is never interpolated into a shell script or a YAML file:
the GitHub workflow passes it through an environment variable, this module checks it against
a deliberately small grammar, and ``qflow run`` gets the result as separate arguments.

Grammar (one line; tokens separated by spaces)::

    LAUNCH: <workflow> [<key>=<value> | ~<key>] … [@<commit>]

- ``workflow``: a name the project declares (``[A-Za-z_][A-Za-z0-9_]*``);
- ``key``: ``[A-Za-z0-9_.+~/-]``, starting with a letter, ``_``, ``+`` or ``~`` (so never an
  option such as ``--executor``);
- ``value``: ``[A-Za-z0-9_.:+/@%-]`` only: no quotes, backticks, ``$``, ``;``, ``|``, ``&``,
  braces (so no ``${…}`` interpolation or ``{{ … }}`` expressions), brackets, parentheses,
  ``*``/``?`` globs, commas (no sweeps) or whitespace other than the separating spaces;
- ``commit``: optional, last, 7 to 40 lower-case hex digits: the head commit the commenter
  approved. The PR workflow then launches only if the pull request's head is that commit.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from qflow.errors import QFlowError, did_you_mean

PREFIX = "LAUNCH:"
MAX_BODY = 2000
MAX_OVERRIDES = 32

_WORKFLOW = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_KEY = re.compile(r"[A-Za-z_+~][A-Za-z0-9_.+~/-]{0,199}")
_VALUE = re.compile(r"[A-Za-z0-9_.:+/@%-]{0,500}")
_COMMIT = re.compile(r"@([0-9a-f]{7,40})")


class CommentRejectedError(QFlowError, ValueError):
    """A launch comment that does not fit the grammar or names an unknown workflow."""


@dataclass(frozen=True)
class LaunchRequest:
    """What a valid comment asks for."""

    workflow: str
    overrides: tuple[str, ...] = field(default_factory=tuple)
    commit: str | None = None
    """The head commit (a prefix of its SHA) the comment approved, if it names one."""

    @property
    def argv(self) -> list[str]:
        """Arguments for ``qflow run``: the workflow, then the overrides."""
        return [self.workflow, *self.overrides]

    def to_json(self) -> dict[str, object]:
        return {
            "ok": True,
            "workflow": self.workflow,
            "overrides": list(self.overrides),
            "commit": self.commit,
            "argv": self.argv,
        }


def _shown(token: str) -> str:
    """A token quoted for an error message, cut short and without control characters."""
    clean = "".join(c if c.isprintable() else "?" for c in token)
    return repr(clean if len(clean) <= 40 else clean[:37] + "...")


def _check_override(token: str) -> str:
    if token.startswith("~") and "=" not in token:
        if _KEY.fullmatch(token) is None:
            raise CommentRejectedError(
                f"Launch comment: override {_shown(token)} is not a config key. "
                "Keys use letters, digits and _ . + ~ / - only."
            )
        return token
    key, sep, value = token.partition("=")
    if not sep:
        raise CommentRejectedError(
            f"Launch comment: {_shown(token)} is not an override. Write key=value "
            "(for example model.C=0.5), or ~key to remove a key."
        )
    if _KEY.fullmatch(key) is None:
        raise CommentRejectedError(
            f"Launch comment: override key {_shown(key)} is not allowed. Keys use letters, "
            "digits and _ . + ~ / - only, and start with a letter, _, + or ~."
        )
    if _VALUE.fullmatch(value) is None:
        bad = sorted({c for c in value if _VALUE.fullmatch(c) is None})
        raise CommentRejectedError(
            f"Launch comment: the value of {key!r} has characters that are not allowed "
            f"({', '.join(_shown(c) for c in bad[:8])}). Values use letters, digits and "
            "_ . : + / @ % - only (no quotes, $, ;, braces, spaces or commas)."
        )
    return token


def parse_comment(body: str, workflows: Collection[str] | None = None) -> LaunchRequest:
    """The launch a comment asks for; ``CommentRejectedError`` saying why otherwise.

    ``workflows`` are the names the project declares; ``None`` skips that check (the caller
    then checks the name itself).
    """
    if len(body) > MAX_BODY:
        raise CommentRejectedError(
            f"Launch comment is {len(body)} characters long; at most {MAX_BODY} are accepted."
        )
    text = body.strip(" \t\r\n")
    if not text.startswith(PREFIX):
        raise CommentRejectedError(
            f"Not a launch comment: it must start with {PREFIX!r}, for example "
            "'LAUNCH: logistic_regression model.C=0.5'."
        )
    rest = text[len(PREFIX) :]
    bad_space = sorted({c for c in rest if not c.isprintable() or (c.isspace() and c != " ")})
    if bad_space:
        raise CommentRejectedError(
            "Launch comment must be one line of printable characters separated by spaces; "
            f"it contains {', '.join(repr(c) for c in bad_space[:5])}."
        )
    tokens = rest.split()
    if not tokens:
        raise CommentRejectedError(
            "Launch comment names no workflow. Write 'LAUNCH: <workflow> [key=value …]'."
        )
    workflow, *overrides = tokens
    commit = None
    if overrides and overrides[-1].startswith("@"):
        pinned = _COMMIT.fullmatch(overrides.pop())
        if pinned is None:
            raise CommentRejectedError(
                "Launch comment: the last token starts with '@', so it must name the commit "
                "to launch: '@' and 7 to 40 lower-case hex digits, e.g. @1a2b3c4."
            )
        commit = pinned.group(1)
    if _WORKFLOW.fullmatch(workflow) is None:
        raise CommentRejectedError(
            f"Launch comment: {_shown(workflow)} is not a workflow name (letters, digits and "
            "_ only, not starting with a digit)."
        )
    if workflows is not None and workflow not in workflows:
        raise CommentRejectedError(
            f"Launch comment: no workflow named {workflow!r} in this project. Known "
            f"workflows: {', '.join(sorted(workflows)) or '(none)'}."
            f"{did_you_mean(workflow, workflows)}"
        )
    if len(overrides) > MAX_OVERRIDES:
        raise CommentRejectedError(
            f"Launch comment has {len(overrides)} overrides; at most {MAX_OVERRIDES} are accepted."
        )
    return LaunchRequest(workflow, tuple(_check_override(t) for t in overrides), commit)
