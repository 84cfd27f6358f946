from __future__ import annotations

import pytest

from qflow.runtime.pyenv import (
    EnvironmentBuildError,
    _lock_lines,
    requirements_from_option,
)


def test_requirements_from_the_step_option() -> None:
    assert requirements_from_option(None) == ()
    assert requirements_from_option({"pip": ["six==1.16.0", " attrs ", "six==1.16.0"]}) == (
        "attrs",
        "six==1.16.0",
    )
    with pytest.raises(EnvironmentBuildError, match="is not supported"):
        requirements_from_option({"conda": ["numpy"]})
    with pytest.raises(EnvironmentBuildError, match="pip options are not allowed"):
        requirements_from_option({"pip": ["--index-url=http://evil/simple"]})


def test_lock_lines_from_a_pip_report() -> None:
    report = {
        "install": [
            {
                "metadata": {"name": "Six", "version": "1.16.0"},
                "download_info": {"url": "x", "archive_info": {"hashes": {"sha256": "ab"}}},
            },
            {"metadata": {"name": "typing_extensions", "version": "4.0"}, "download_info": {}},
        ]
    }
    assert _lock_lines(report) == ("six==1.16.0 --hash=sha256:ab", "typing-extensions==4.0")
