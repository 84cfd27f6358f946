"""A running step's output so far: sent when it grew, at most every ``OUTPUT_EVERY_SECONDS``,
and only its tail when it is huge."""

from __future__ import annotations

import io

from qflow.runtime.context import (
    OUTPUT_EVERY_SECONDS,
    OUTPUT_MAX_CHARS,
    RunSinks,
    StepRecorder,
)


def _recorder(sent: list[tuple[int, str, str]]) -> tuple[StepRecorder, io.StringIO, io.StringIO]:
    def ignore(*_: object) -> None:
        return None

    sinks = RunSinks(ignore, ignore, ignore, ignore, lambda *args: sent.append(args))
    recorder = StepRecorder("run1", 7, "train", sinks)
    out, err = io.StringIO(), io.StringIO()
    recorder.streams = (out, err)
    return recorder, out, err


def test_output_is_sent_when_it_grew_and_not_more_often_than_the_throttle() -> None:
    sent: list[tuple[int, str, str]] = []
    recorder, out, err = _recorder(sent)
    recorder.flush_output(100.0)
    assert sent == []  # nothing printed yet
    out.write("epoch 1\n")
    recorder.flush_output(101.0)
    assert sent == [(7, "epoch 1\n", "")]
    err.write("warning\n")
    recorder.flush_output(101.0 + OUTPUT_EVERY_SECONDS / 2)
    assert len(sent) == 1  # too soon: waits for the next tick
    recorder.flush_output(101.0 + OUTPUT_EVERY_SECONDS)
    assert sent[-1] == (7, "epoch 1\n", "warning\n")
    recorder.flush_output(110.0)
    assert len(sent) == 2  # unchanged: nothing sent


def test_huge_output_is_sent_as_its_tail_under_a_line_saying_so() -> None:
    sent: list[tuple[int, str, str]] = []
    recorder, out, _ = _recorder(sent)
    out.write("x" * OUTPUT_MAX_CHARS + "last line\n")
    recorder.flush_output(100.0)
    stdout = sent[0][1]
    assert len(stdout) <= OUTPUT_MAX_CHARS
    assert stdout.startswith("[qflow] ") and "earlier characters" in stdout.splitlines()[0]
    assert stdout.endswith("xlast line\n")
