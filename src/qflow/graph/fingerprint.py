"""Content hashes: a step's code fingerprint and the cache key of one step call."""

from __future__ import annotations

import ast
import hashlib
import json
import textwrap
from collections.abc import Mapping


def normalized_source(source: str) -> str:
    """Source with comments, blank lines, formatting and docstrings removed.

    Two functions that differ only in those have the same fingerprint, so reformatting code
    does not invalidate the cache.
    """
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return source
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = []
    return ast.unparse(tree)


def code_fingerprint(source: str, version: str | None, serializers: Mapping[str, str]) -> str:
    payload = json.dumps(
        {"source": normalized_source(source), "version": version, "serializers": serializers},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def cache_key(fingerprint: str, inputs: Mapping[str, str], params: Mapping[str, str]) -> str:
    """Key of one step call: code fingerprint, input artifact hashes and canonical params."""
    payload = json.dumps(
        {"code": fingerprint, "inputs": dict(inputs), "params": dict(params)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()
