"""Loaded by the Python subprocesses of a ``qflow exec`` script (this folder is put first on
their ``PYTHONPATH``): report the files the process opens to the script's run, then run the
``sitecustomize`` this one hides, if there is one."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys


def _report() -> None:
    log_dir = os.environ.get("QFLOW_READS_LOG_DIR")
    if not log_dir or not os.path.isdir(log_dir):
        return
    try:
        from qflow.runtime.reads import report_to
    except ImportError:  # another interpreter without QFlow: the run warns it saw nothing
        return
    report_to(log_dir)


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_report()
_chain()
