"""Sweeps with real Optuna, real runs, SQLite and PostgreSQL: cache sharing, pruning,
parallel trials in their own processes, resume, two processes on one sweep, the CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest

from qflow.cli.app import run_cli
from qflow.client import Client
from qflow.errors import ConfigError
from qflow.store.metadata.records import Run

optuna = pytest.importorskip("optuna")

pytestmark = pytest.mark.integration

WORKFLOW = textwrap.dedent(
    """
    import qflow as qf

    @qf.step
    def load(n: int) -> list[float]:
        return [i / n for i in range(n)]

    @qf.step
    def epoch(data: list[float], previous: float, *, C: float, kernel: str, index: int,
              epochs: int) -> float:
        quality = 1 - (C - 0.3) ** 2 + (0.05 if kernel == "rbf" else 0.0)
        value = quality * (index + 1) / epochs
        qf.log_metric("accuracy", value, step=index)
        return value

    @qf.workflow
    def train(cfg):
        data = load(cfg.data.n)
        accuracy = 0.0
        for index in range(cfg.epochs):
            accuracy = epoch(data, accuracy, C=cfg.model.C, kernel=cfg.model.kernel,
                             index=index, epochs=cfg.epochs)
        return accuracy
    """
)

CONFIG = textwrap.dedent(
    """
    data: {n: 50}
    epochs: 3
    model: {C: 1.0, kernel: linear}
    sweep:
      objective: accuracy
      direction: maximize
      params:
        model.C: float(0, 1)
        model.kernel: choice(linear, rbf)
    """
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sweep_project(
    request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A project with the ``train`` workflow (a module of its own) and a sweep section."""
    module = f"sweepwf_{uuid.uuid4().hex[:8]}"
    (project / "src").mkdir()
    (project / "src" / f"{module}.py").write_text(WORKFLOW)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "sweeps"\n[tool.qflow]\nworkflow-modules = ["{module}"]\n'
    )
    (project / "conf").mkdir()
    (project / "conf" / "train.yaml").write_text(CONFIG)
    monkeypatch.chdir(project)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    if request.param == "postgres":
        postgres_url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("QFLOW_STORE", postgres_url)
    yield project
    sys.modules.pop(module, None)


def _study(project: Path, sweep_id: str) -> optuna.Study:
    from qflow.store.location import default_store_url
    from qflow.sweep.storage import open_storage

    return optuna.load_study(study_name=sweep_id, storage=open_storage(default_store_url(project)))


def _step_statuses(client: Client, sweep_id: str, step: str) -> list[str]:
    runs = client.metadata.list_runs(tags={"sweep.id": sweep_id}, limit=1000)
    return [s.status for r in runs for s in client.metadata.step_runs(r.id) if s.name == step]


def test_twenty_trials_load_data_once(sweep_project: Path) -> None:
    from qflow.sweep.driver import start_sweep

    outcome = start_sweep("train", trials=20, sampler="random", pruner="none", seed=3)
    assert [r.state for r in outcome.results] == ["complete"] * 20
    client = Client(sweep_project)
    statuses = _step_statuses(client, outcome.sweep_id, "0_load")
    assert sorted(statuses) == ["cached"] * 19 + ["succeeded"]
    runs = client.metadata.list_runs(tags={"sweep.id": outcome.sweep_id}, limit=100)
    assert len(runs) == 20
    assert {r.sweep_id for r in runs} == {outcome.sweep_id}
    assert sorted(int(r.tags["sweep.trial"]) for r in runs) == list(range(20))
    assert all("sweep" not in r.config for r in runs)  # the search space is not run config
    study = _study(sweep_project, outcome.sweep_id)
    assert len(study.trials) == 20
    best = outcome.best
    assert best is not None
    assert best.value == pytest.approx(study.best_value)
    assert client.run(best.run_id).config["model"]["C"] == pytest.approx(best.params["model.C"])
    assert client.run(best.run_id).metrics_summary["accuracy"] == pytest.approx(best.value)


def test_pruned_trials_are_recorded_and_stopped(sweep_project: Path) -> None:
    from qflow.sweep.driver import start_sweep

    outcome = start_sweep(
        "train", overrides=["epochs=4"], trials=14, sampler="random", pruner="median", seed=0
    )
    pruned = [r for r in outcome.results if r.state == "pruned"]
    assert pruned, [r.state for r in outcome.results]
    study = _study(sweep_project, outcome.sweep_id)
    client = Client(sweep_project)
    for result in pruned:
        frozen = study.trials[result.number]
        assert frozen.state == optuna.trial.TrialState.PRUNED
        run = client.run(result.run_id)
        assert run.tags["sweep.pruned"] == "true"
        assert run.status == "killed"  # stopped at the step that made it look bad
        steps = {s.name: s.status for s in client.metadata.step_runs(run.id)}
        assert steps["4_epoch"] != "succeeded"
        assert frozen.last_step is not None and frozen.last_step < 3
    complete = [r for r in outcome.results if r.state == "complete"]
    assert complete
    assert all("sweep.pruned" not in client.run(r.run_id).tags for r in complete)


def test_parallel_trials_in_pooled_processes(sweep_project: Path) -> None:
    from qflow.sweep.driver import start_sweep

    seen: list[int] = []
    outcome = start_sweep(
        "train",
        trials=6,
        parallel=3,
        sampler="random",
        pruner="none",
        seed=1,
        on_trial=lambda r: seen.append(r.number),
    )
    assert sorted(seen) == list(range(6))
    assert seen[0] == 0  # the first trial runs alone, to fill the cache
    assert {r.state for r in outcome.results} == {"complete"}
    client = Client(sweep_project)
    assert sorted(_step_statuses(client, outcome.sweep_id, "0_load")) == ["cached"] * 5 + [
        "succeeded"
    ]
    pids = {client.run(r.run_id).pid for r in outcome.results}
    assert os.getpid() not in pids
    assert len(pids) <= 3  # a pool of 3 persistent trial processes ran the 6 trials


def test_parallel_pruning_stops_the_trial_process(sweep_project: Path) -> None:
    from qflow.sweep.driver import start_sweep

    outcome = start_sweep(
        "train",
        overrides=["epochs=4"],
        trials=12,
        parallel=2,
        sampler="random",
        pruner="median",
        seed=0,
        executor="parallel",
        workers=2,
    )
    pruned = [r for r in outcome.results if r.state == "pruned"]
    assert pruned
    client = Client(sweep_project)
    for result in pruned:
        run = client.run(result.run_id)
        assert run.tags["sweep.pruned"] == "true"
        assert run.status in ("killed", "succeeded")  # a late decision can miss the last step
    assert any(client.run(r.run_id).status == "killed" for r in pruned)


def test_resume_and_two_processes_on_one_sweep(sweep_project: Path) -> None:
    from qflow.sweep.driver import resume_sweep, start_sweep

    first = start_sweep("train", trials=3, sampler="random", pruner="none", seed=5)
    assert len(first.results) == 3
    code = (
        "import sys; from qflow.sweep.driver import resume_sweep; "
        "resume_sweep(sys.argv[1], trials=11)"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, first.sweep_id[:12]],
            cwd=sweep_project,
            env=dict(os.environ),
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err.decode()
    study = _study(sweep_project, first.sweep_id)
    states = [t.state for t in study.trials]
    assert 11 <= len(states) <= 12
    assert set(states) == {optuna.trial.TrialState.COMPLETE}
    client = Client(sweep_project)
    runs = client.metadata.list_runs(tags={"sweep.id": first.sweep_id}, limit=100)
    assert sorted(int(r.tags["sweep.trial"]) for r in runs) == list(range(len(states)))
    assert len({r.pid for r in runs}) >= 3  # this process and both workers ran trials
    again = resume_sweep(first.sweep_id, trials=len(states))
    assert again.results == []
    assert again.best is not None


def test_resume_settles_an_abandoned_trial(sweep_project: Path) -> None:
    from qflow.sweep.driver import resume_sweep, start_sweep

    first = start_sweep("train", trials=2, sampler="random", pruner="none", seed=2)
    study = _study(sweep_project, first.sweep_id)
    study.ask()  # a trial whose process died before it started a run, long ago
    orphan = study.trials[-1]
    import datetime as dt

    from sqlalchemy import text

    from qflow.store.location import default_store_url
    from qflow.sweep.storage import open_storage

    storage = open_storage(default_store_url(sweep_project))

    with storage.engine.begin() as conn:
        old = dt.datetime.now() - dt.timedelta(hours=2)
        conn.execute(
            text("UPDATE trials SET datetime_start = :old WHERE trial_id = :id"),
            {"old": old, "id": orphan._trial_id},
        )
    outcome = resume_sweep(first.sweep_id, trials=4)
    study = _study(sweep_project, first.sweep_id)
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert study.trials[orphan.number].user_attrs["qflow.interrupted"] is True
    # the abandoned trial does not count: two more trials make four, the first one with the
    # abandoned trial's parameters (it asked for none, so there are none to retry here)
    assert [r.state for r in outcome.results] == ["complete", "complete"]
    assert len(study.trials) == 5


def test_missing_objective_stops_the_sweep(sweep_project: Path) -> None:
    from qflow.sweep.driver import start_sweep

    with pytest.raises(ConfigError, match=r"(?s)logged no metric .acuracy.*Did you mean: accuracy"):
        start_sweep("train", objective="acuracy", trials=5, pruner="none")


def test_unknown_key_and_grid(sweep_project: Path) -> None:
    from qflow.sweep.driver import start_sweep

    with pytest.raises(ConfigError, match=r"(?s)'model\.D' is not a key.*Did you mean: model\.C"):
        start_sweep("train", params={"model.D": "float(0, 1)"})
    outcome = start_sweep(
        "train",
        params={"model.C": "float(0.1, 0.5, step=0.2)"},
        sampler="grid",
        trials=50,
        pruner="none",
    )
    assert len(outcome.results) == 6  # 3 values of C x 2 kernels, then the grid is done
    seen = {(r.params["model.C"], r.params["model.kernel"]) for r in outcome.results}
    assert len(seen) == 6


def test_cli_sweep_show_and_list(sweep_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(
        [
            "sweep",
            "train",
            "data.n=20",
            "--trials",
            "6",
            "--sampler",
            "tpe",
            "--seed",
            "4",
            "--param",
            "model.C=log_float(0.01, 1)",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    sweep_id = result["id"]
    assert len(result["trials"]) == 6
    assert all(0.01 <= t["params"]["model.C"] <= 1 for t in result["trials"])
    assert Client(sweep_project).run(result["best"]["run_id"]).config["data"]["n"] == 20

    assert run_cli(["sweeps", "show", sweep_id[:10], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["best"]["run_id"] == result["best"]["run_id"]
    assert set(report["importances"]) == {"model.C", "model.kernel"}
    for path in report["plots"].values():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert Path(path).parent == sweep_project / ".qflow" / "sweeps" / sweep_id

    assert run_cli(["sweeps", "show", sweep_id]) == 0
    text = capsys.readouterr().out
    assert "best: trial" in text and "importances:" in text and "optimization_history" in text

    assert run_cli(["sweeps", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == sweep_id and listed[0]["trials"] == 6

    assert run_cli(["sweeps", "show", "nosuchsweep"]) == 1
    assert "No sweep 'nosuchsweep'" in capsys.readouterr().err


# -- Ctrl-C in a real terminal ------------------------------------------------------------

SLOW_WORKFLOW = textwrap.dedent(
    """
    import os
    import time
    import qflow as qf

    @qf.step
    def work(C: float) -> float:
        with open(os.environ["SWEEP_STARTED"], "a") as started:
            started.write(f"{C}\\n")
        print(f"working on C={C}", flush=True)
        time.sleep(2)
        print("done", flush=True)
        qf.log_metric("score", 1 - (C - 0.3) ** 2)
        return C

    @qf.workflow
    def slow(cfg):
        return work(cfg.model.C)
    """
)

SLOW_CONFIG = textwrap.dedent(
    """
    model: {C: 1.0}
    sweep:
      objective: score
      direction: maximize
      params:
        model.C: float(0, 1)
    """
)


def _terminal(project: Path, args: list[str]) -> pexpect.spawn:
    """``qflow ARGS`` in a pseudo-terminal 200 columns wide, as a user runs it."""
    env = {**os.environ, "NO_COLOR": "1", "SWEEP_STARTED": str(project / "started.txt")}
    qflow = str(Path(sys.executable).parent / "qflow")
    return pexpect.spawn(
        qflow, args, cwd=project, env=env, encoding="utf-8", timeout=120, dimensions=(40, 200)
    )


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _started(project: Path) -> int:
    path = project / "started.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _runs_by_trial(project: Path, sweep_id: str) -> dict[int, list[Run]]:
    runs: dict[int, list[Run]] = {}
    for run in Client(project).metadata.list_runs(tags={"sweep.id": sweep_id}, limit=1000):
        runs.setdefault(int(run.tags["sweep.trial"]), []).append(run)
    return runs


def _check_records(project: Path, sweep_id: str) -> dict[int, str]:
    """Every trial agrees with its run; returns each trial's state (interrupted included)."""
    from qflow.sweep.repair import recorded_as

    runs = _runs_by_trial(project, sweep_id)
    states = {}
    for trial in _study(project, sweep_id).get_trials(deepcopy=False):
        state = states[trial.number] = recorded_as(trial)
        trial_runs = runs.get(trial.number, [])
        assert len(trial_runs) <= 1, f"trial {trial.number} ran twice"
        if trial_runs and trial_runs[0].status == "succeeded":
            run = trial_runs[0]
            assert state == "complete", f"trial {trial.number}'s run succeeded; it is {state}"
            assert trial.value == pytest.approx(run.metrics_summary["score"])
            assert trial.user_attrs["run_id"] == run.id
        if state == "interrupted" and trial_runs:
            assert trial_runs[0].status == "killed"
        assert state != "running", f"trial {trial.number} left running"
    return states


@pytest.mark.parametrize("parallel", [1, 2], ids=["parallel-1", "parallel-2"])
def test_ctrl_c_in_a_terminal_keeps_finished_trials_and_resume_finishes(
    project: Path, parallel: int
) -> None:
    (project / "src").mkdir()
    module = f"slowsweep_{uuid.uuid4().hex[:8]}"
    (project / "src" / f"{module}.py").write_text(SLOW_WORKFLOW)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "slow"\n[tool.qflow]\nworkflow-modules = ["{module}"]\n'
    )
    (project / "conf").mkdir()
    (project / "conf" / "slow.yaml").write_text(SLOW_CONFIG)
    options = ["--trials", "5", "--sampler", "random", "--seed", "7", "--pruner", "none"]
    parallel_option = ["--parallel", str(parallel)] if parallel > 1 else []

    sweep = _terminal(project, ["sweep", "slow", *options, *parallel_option])
    sweep.expect(r"Sweep (\w+) of slow: 0 of 5 trials done[^\r\n]*\r\n")
    sweep_id = sweep.match.group(1)
    command = f"qflow sweep slow --resume {sweep_id}" + (f" --parallel {parallel}" * (parallel > 1))
    sweep.expect(r"Ctrl-C stops it; continue it with: ([^\r\n]*)\r\n")
    assert sweep.match.group(1) == command
    for _ in range(2):
        sweep.expect(r"trial +\d+ complete")
    # the (2 + parallel)th trial to start was asked for after two trials had finished; it
    # is at work (for two seconds) when Ctrl-C comes
    _wait_for(lambda: _started(project) >= 2 + parallel, "one more trial to be working")
    sweep.sendintr()  # Ctrl-C: SIGINT to the terminal's foreground process group
    sweep.expect(pexpect.EOF)
    sweep.close()
    shown = _plain(sweep.before)
    assert sweep.exitstatus == 130, shown
    assert "Traceback" not in shown
    assert f"Sweep {sweep_id} of 'slow' was interrupted" in shown
    assert f"continue it with\r\n  {command}\r\n" in shown
    assert "qflow resume " not in shown

    states = _check_records(project, sweep_id)
    finished = [n for n, state in states.items() if state == "complete"]
    interrupted = [n for n, state in states.items() if state == "interrupted"]
    assert len(finished) >= 2
    assert interrupted, states  # the trial at work was stopped, not failed
    assert set(states.values()) == {"complete", "interrupted"}
    assert f"trial {interrupted[0]:>3} interrupted" in shown
    finished_runs = {n: _runs_by_trial(project, sweep_id)[n][0].id for n in finished}
    started_before = _started(project)

    resume = _terminal(project, shlex.split(command)[1:])
    resume.expect(pexpect.EOF, timeout=240)
    resume.close()
    assert resume.exitstatus == 0, resume.before
    assert f"{len(finished)} of 5 trials done" in _plain(resume.before)

    states = _check_records(project, sweep_id)
    complete = [n for n, state in states.items() if state == "complete"]
    assert len(complete) == 5
    runs = _runs_by_trial(project, sweep_id)
    assert {n: runs[n][0].id for n in finished} == finished_runs  # finished trials kept
    new = [n for n in complete if n not in finished]
    assert min(new) > max(states) - len(new)  # only new trials ran
    # and no finished one again: a new trial runs its step, or takes it from the cache when
    # it retries an interrupted trial whose step had finished just before Ctrl-C stopped it
    client = Client(project)
    steps = {n: client.run(runs[n][0].id).step("work") for n in (*new, *interrupted) if runs.get(n)}
    ran = [n for n in new if steps[n].status == "succeeded"]
    assert _started(project) - started_before == len(ran)
    stopped_steps = {steps[n].id for n in interrupted if n in steps}
    assert all(steps[n].cached_from in stopped_steps for n in new if n not in ran)
    retried = {tuple(_study(project, sweep_id).trials[n].params.items()) for n in interrupted}
    params = {tuple(_study(project, sweep_id).trials[n].params.items()) for n in new}
    assert retried <= params  # the interrupted trials' parameters were tried again


def test_cli_resume_names_the_workflow(
    sweep_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qflow.sweep.driver import start_sweep

    first = start_sweep("train", trials=1, sampler="random", pruner="none", seed=1)
    assert run_cli(["sweep", "trian", "--resume", first.sweep_id]) == 1
    err = capsys.readouterr().err
    assert f"Sweep {first.sweep_id} sweeps the workflow 'train', not 'trian'" in err
    assert run_cli(["sweep", "train", "--resume", first.sweep_id[:12], "--trials", "2"]) == 0
    err = capsys.readouterr().err
    assert f"Sweep {first.sweep_id} of train: 1 of 2 trials done." in err
    assert f"continue it with: qflow sweep train --resume {first.sweep_id}\n" in err
    assert len(_study(sweep_project, first.sweep_id).trials) == 2


def test_trials_end_with_a_killed_sweep(project: Path) -> None:
    """``kill -9`` of ``qflow sweep --parallel 2``: its trial processes stop on their own, and
    their runs end ``killed`` (not ``running`` forever, not finished unobserved)."""
    (project / "src").mkdir()
    module = f"slowsweep_{uuid.uuid4().hex[:8]}"
    (project / "src" / f"{module}.py").write_text(SLOW_WORKFLOW)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "slow"\n[tool.qflow]\nworkflow-modules = ["{module}"]\n'
    )
    (project / "conf").mkdir()
    (project / "conf" / "slow.yaml").write_text(SLOW_CONFIG)
    options = ["--trials", "6", "--sampler", "random", "--seed", "7", "--pruner", "none"]
    sweep = _terminal(project, ["sweep", "slow", *options, "--parallel", "2"])
    sweep.expect(r"Sweep (\w+) of slow")
    _wait_for(lambda: _started(project) >= 2, "two trials to be working")
    trials = _children(sweep.pid)
    assert trials, "no trial processes found"
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.close(force=True)
    _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in trials), "trials to end", 15)
    runs = Client(project).metadata.list_runs(limit=100)
    assert runs
    assert {run.status for run in runs} <= {"killed", "succeeded"}
    assert "killed" in {run.status for run in runs}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


LOOP_WORKFLOW = textwrap.dedent(
    """
    import time
    import qflow as qf

    @qf.step
    def fit(C: float, epochs: int) -> float:
        quality = 1 - (C - 0.3) ** 2
        for epoch in range(epochs):  # one step, a metric per epoch: the usual training loop
            qf.log_metric("accuracy", quality * (epoch + 1) / epochs, step=epoch)
            time.sleep(0.3)
        return quality

    @qf.workflow
    def loop(cfg):
        return fit(cfg.model.C, cfg.epochs)
    """
)


def test_pruning_stops_a_training_loop_inside_one_step(project: Path) -> None:
    """A pruned trial of a one-step training loop stops within a few epochs, not at its end
    (its points are flushed while the step runs, and its next qf.log_metric raises)."""
    from qflow.sweep.driver import start_sweep

    module = f"loopwf_{uuid.uuid4().hex[:8]}"
    (project / "src").mkdir()
    (project / "src" / f"{module}.py").write_text(LOOP_WORKFLOW)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "loop"\n[tool.qflow]\nworkflow-modules = ["{module}"]\n'
    )
    (project / "conf").mkdir()
    (project / "conf" / "loop.yaml").write_text(
        "epochs: 10\nmodel: {C: 1.0}\nsweep:\n  objective: accuracy\n  direction: maximize\n"
        "  params:\n    model.C: float(0, 1)\n"
    )
    try:
        outcome = start_sweep(
            "loop", trials=8, sampler="random", pruner="median", seed=3, project_dir=project
        )
    finally:
        sys.modules.pop(module, None)
    pruned = [r for r in outcome.results if r.state == "pruned"]
    assert pruned, [r.state for r in outcome.results]
    client = Client(project)
    for result in pruned:
        run = client.run(result.run_id)
        assert run.status == "killed"
        last = max(int(m.step) for m in run.metric_history("accuracy"))
        assert last < 9, f"trial {result.number} ran all its epochs"
        assert run.duration is not None and run.duration < 2.9  # 10 epochs take 3 s
