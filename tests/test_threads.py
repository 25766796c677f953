"""The thread chooser, driven by a fake clock: batches cost what a simulated machine says."""

from __future__ import annotations

import random
import re

import pytest
import torch

from lstm_tagger.errors import ConfigError
from lstm_tagger.limits import MAX_THREADS
from lstm_tagger.threads import ThreadChooser, parse_threads, thread_chooser

# Seconds per token on a simulated 2-core machine, as measured on ours (issue 17): alone,
# two threads are faster; beside a busy program, two spinning threads collapse.
COST = {(2, False): 1.0, (1, False): 1.35, (2, True): 20.0, (1, True): 1.37}


class Machine:
    """A fake clock and the batches' cost; ``busy`` says whether another program runs."""

    def __init__(self):
        self.now = 0.0
        self.busy = False
        self.applied: list[int] = []
        self.log: list[str] = []

    def chooser(self, **options) -> ThreadChooser:
        return ThreadChooser([2, 1], apply=self.applied.append, clock=lambda: self.now, log=self.log.append, **options)

    def run(self, chooser: ThreadChooser, batches: int, tokens: int = 100) -> list[int]:
        """Train ``batches`` batches; the thread count of each."""
        used = []
        for _ in range(batches):
            chooser.batch_started()
            used.append(chooser.threads)
            self.now += tokens * COST[chooser.threads, self.busy] * 1e-4
            chooser.batch_finished(tokens)
        return used


def test_alone_it_keeps_all_cores_after_probing_one_thread():
    machine = Machine()
    chooser = machine.chooser()
    used = machine.run(chooser, 20)
    assert used[:8] == [1, 1, 1, 1, 2, 2, 2, 2]  # warm-up + 3 at one thread, warm-up + 3 at two
    assert used[8:] == [2] * 12
    assert machine.applied == [1, 2]
    assert machine.log[0].startswith("threads: 2 (start; 1 thread 135.0 us/token, 2 threads 100.0 us/token")


def test_it_switches_to_one_thread_when_another_program_starts_and_back_when_it_stops():
    machine = Machine()
    chooser = machine.chooser(interval=20.0)
    machine.run(chooser, 20)
    machine.busy = True
    used = machine.run(chooser, 30)
    assert used[-10:] == [1] * 10
    assert sum(1 for n in used if n == 2) <= 10  # the window that noticed, and one batch of the probe
    assert any("x slower" in line and line.startswith("threads: 1") for line in machine.log)
    # busy: every periodic probe of two threads gives up after one batch
    used = machine.run(chooser, 2000)
    assert used.count(2) <= 12, used.count(2)
    machine.busy = False
    used = machine.run(chooser, 3000)
    assert used[-100:] == [2] * 100
    assert machine.log[-1].startswith("threads: 2 (periodic")


def test_its_cost_stays_near_the_better_fixed_setting_alone_and_beside_a_busy_program():
    for busy in (False, True):
        machine = Machine()
        machine.busy = busy
        chooser = machine.chooser()
        machine.run(chooser, 5000)
        best_fixed = 5000 * 100 * min(COST[2, busy], COST[1, busy]) * 1e-4
        assert machine.now <= 1.05 * best_fixed, (busy, machine.now / best_fixed)


def test_a_batch_far_slower_ends_that_candidates_probe_at_once():
    machine = Machine()
    machine.busy = True
    chooser = machine.chooser()
    used = machine.run(chooser, 12)
    # start: warm-up + 3 at one thread, then one batch at two threads, 14x slower: given up
    assert used[:5] == [1, 1, 1, 1, 2] and used[5:] == [1] * 7
    machine.now = chooser.next_probe  # the periodic probe is due
    used = machine.run(chooser, 10)
    assert used.count(2) == 1  # one batch at two threads, 14x slower: given up


class ShapedMachine:
    """A 2-core machine whose batches cost what their shape says, as EWT's do: each batch is 32
    sentences of one length (the trainer buckets them), and costs a fixed part (the optimiser
    step, the Python around a batch) plus a part per token, so that seconds per token are 6x
    higher for the smallest batches than for the largest; times noise (+-12%), a garbage
    collection (2x) one batch in 40, and every 400 batches an evaluation (10 s without batches)
    after which the first batch is 3x slower. ``slower`` multiplies two threads' cost (another
    program has started)."""

    FIXED, PER_TOKEN = 0.07, 0.35e-3
    SPEED = {2: 1.0, 1: 1.35}

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.now, self.slower, self.batches = 0.0, 1.0, 0
        self.log: list[str] = []

    def chooser(self) -> ThreadChooser:
        return ThreadChooser([2, 1], apply=lambda n: None, clock=lambda: self.now, log=self.log.append)

    def run(self, chooser: ThreadChooser, batches: int) -> list[int]:
        used = []
        for _ in range(batches):
            tokens = 32 * min(80, max(1, int(self.rng.lognormvariate(2.5, 0.8))))
            chooser.batch_started()
            used.append(chooser.threads)
            cost = (self.FIXED + self.PER_TOKEN * tokens) * self.SPEED[chooser.threads] * self.rng.uniform(0.9, 1.15)
            cost *= (2.0 if self.rng.random() < 1 / 40 else 1.0) * (3.0 if self.batches % 400 == 0 else 1.0)
            self.now += cost * (self.slower if chooser.threads == 2 else 1.0)
            chooser.batch_finished(tokens)
            self.batches += 1
            if self.batches % 400 == 0:
                self.now += 10.0
        return used


def probes(log: list[str]) -> list[tuple[str, int, int]]:
    """(reason, threads chosen, seconds to the next probe) of each decision logged."""
    found = [re.match(r"threads: (\d+) \(([^;]+);.* next probe in (\d+) s\)$", line) for line in log]
    return [(m.group(2), int(m.group(1)), int(m.group(3))) for m in found]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_on_a_quiet_machine_it_probes_only_on_its_doubling_interval(seed):
    """Batches of very different sizes on a quiet machine: after the first probe, no 'x slower'
    probe, every periodic probe keeps two threads, and the interval doubles up to its maximum."""
    machine = ShapedMachine(seed)
    machine.run(machine.chooser(), 6000)
    decisions = probes(machine.log)
    assert decisions[0][0] == "start" and len(decisions) > 8
    assert all(reason == "periodic" and threads == 2 for reason, threads, _ in decisions[2:]), decisions
    intervals = [seconds for _, _, seconds in decisions[1:]]
    assert intervals[-5:] == [160] * 5 and intervals == sorted(intervals), decisions


def test_a_real_3x_slowdown_is_probed_at_once():
    machine = ShapedMachine(4)
    chooser = machine.chooser()
    machine.run(chooser, 1500)
    before = len(machine.log)
    machine.slower = 3.0
    used = machine.run(chooser, 40)
    (reason, threads, _), = probes(machine.log[before:])
    assert reason.endswith("x slower") and float(reason.split("x")[0]) > 2.5 and threads == 1
    assert used[:8] == [2] * 8 and used[-10:] == [1] * 10  # noticed after one window of 8 batches


@pytest.mark.parametrize("text, expected", [("auto", None), ("AUTO", None), ("1", 1), ("4", 4), (3, 3)])
def test_parse_threads(text, expected):
    assert parse_threads(text) == expected


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", ""])
def test_parse_threads_refuses_with_one_line(text):
    with pytest.raises(ConfigError, match=r"^--threads: must be 'auto' or a whole number > 0, got "):
        parse_threads(text)


def test_fixed_counts_and_torchrun_shares_are_applied_without_a_chooser(monkeypatch):
    monkeypatch.setattr("lstm_tagger.threads.available_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    log: list[str] = []
    try:
        assert thread_chooser(1, 1, log.append) is None and torch.get_num_threads() == 1
        assert thread_chooser(None, 2, log.append) is None and torch.get_num_threads() == 1
        assert log == ["threads: 1 per process (2 cores, 2 processes on this machine)"]
        assert thread_chooser(2, 2, log.append) is None and torch.get_num_threads() == 2
        assert "expect contention" in log[-1]
        assert isinstance(thread_chooser(None, 1, log.append), ThreadChooser)
    finally:
        torch.set_num_threads(before)


def test_omp_num_threads_caps_auto_outside_torchrun_only(monkeypatch):
    monkeypatch.setattr("lstm_tagger.threads.available_cores", lambda: 4)
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert thread_chooser(None, 1, print) is None and torch.get_num_threads() == 1
        assert thread_chooser(None, 2, lambda m: None) is None and torch.get_num_threads() == 2  # torchrun's 1 ignored
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert thread_chooser(None, 1, print).candidates == [3, 1]
    finally:
        torch.set_num_threads(before)


def test_train_logs_its_choice_and_the_cli_refuses_a_bad_count(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lstm_tagger.cli import app
    from conftest import assert_one_line_error, tiny_config

    monkeypatch.setattr("lstm_tagger.threads.available_cores", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    runner = CliRunner()
    config = tiny_config(tmp_path, train={"epochs": 12, "batch_size": 1})
    before = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--no-progress"])
        assert result.exit_code == 0, result.output
        log = (tmp_path / "run" / "train.log").read_text()
        assert "threads: " in log and "(start; 1 thread " in log
        for command in (["train", str(config), "--threads", "0"], ["predict", "--threads", "two", "a b"], ["eval", "--threads", "-1"]):
            assert_one_line_error(runner.invoke(app, command), "--threads: must be 'auto' or a whole number > 0, got ")
        result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "one"), "--threads", "1", "--set", "train.epochs=1"])
        assert result.exit_code == 0 and torch.get_num_threads() == 1
        assert load_config_threads(tmp_path / "one") == 1
    finally:
        torch.set_num_threads(before)


def load_config_threads(run) -> int:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["train"]["threads"]


@pytest.mark.parametrize("text, expected", [(" Auto ", None), ("auto ", None), ("4 ", 4), ("0004", 4), ("1024", 1024), (1024, 1024)])
def test_parse_threads_reads_every_spelling_alike(text, expected):
    assert parse_threads(text) == expected


@pytest.mark.parametrize("text", ["1025", "1000000000", "9" * 50, 2000])
def test_parse_threads_refuses_more_than_the_limit(text):
    with pytest.raises(ConfigError) as caught:
        parse_threads(text)
    assert str(caught.value) == f"--threads: must be at most {MAX_THREADS:,} (or 'auto'), got {text!r}"


@pytest.mark.parametrize("text", ["²", "٣", "4.0", True, None])
def test_parse_threads_takes_ascii_digits_only(text):
    with pytest.raises(ConfigError) as caught:
        parse_threads(text)
    assert str(caught.value) == f"--threads: must be 'auto' or a whole number > 0, got {text!r}"


def test_every_command_refuses_a_huge_thread_count_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from lstm_tagger.cli import app
    from conftest import assert_one_line_error, tiny_config

    runner = CliRunner()
    config = str(tiny_config(tmp_path))
    for command in (["predict", "a b"], ["eval"], ["train", config], ["bench", config]):
        result = runner.invoke(app, [*command, "--threads", "1000000000"])
        assert_one_line_error(result, "--threads: must be at most 1,024 (or 'auto'), got '1000000000'")


def test_train_reads_threads_as_predict_does(tmp_path):
    """``--threads`` of train, ``--set train.threads`` and the config file: the spellings predict takes."""
    from typer.testing import CliRunner

    from lstm_tagger.cli import app
    from lstm_tagger.configfile import load_config
    from conftest import assert_one_line_error, tiny_config

    runner = CliRunner()
    config = tiny_config(tmp_path)
    taken = tmp_path / "a-file"
    taken.write_text("")
    for spelling in ("AUTO", "auto ", " 2", "0x10"):  # the run gets as far as its output directory, or not
        result = runner.invoke(app, ["train", str(config), "--threads", spelling, "--output", str(taken)])
        assert_one_line_error(result, "got '0x10'" if spelling == "0x10" else f"{taken}: exists and is not a directory")
    for value, expected in (("AUTO", "auto"), ("' 2 '", 2), (3, 3)):
        assert load_config(config, [f"train.threads={value}"]).train.threads == expected
        config.write_text(config.read_text().replace("train:\n", f"train:\n  threads: {value}\n"))
        assert load_config(config).train.threads == expected
        config = tiny_config(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(config, ["train.threads=2000"])
    assert str(caught.value) == "--set train.threads=2000: train.threads: must be at most 1,024 (or 'auto'), got 2000"
