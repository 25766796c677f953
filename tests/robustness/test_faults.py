"""Faults from outside: kill -9, a second trainer, hostile checkpoints, divergence, a full disk."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint, load_config, train
from lstm_tagger.checkpoint import FORMAT_VERSION
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.cli import app
from lstm_tagger.errors import UserError

from conftest import ROOT, assert_one_line_error, tiny_config

runner = CliRunner()
DEMO = str(ROOT / "configs" / "demo.yaml")


def start_train(out: Path, *extra: str, kill_at_write: int = 0) -> subprocess.Popen:
    """``lstm-tag train DEMO --output out ...`` in a child process.

    With ``kill_at_write=n`` the child kills itself with SIGKILL inside its n-th checkpoint
    write: after the data went into the temporary file, before the fsync and the rename.
    """
    command = [sys.executable, "-m", "lstm_tagger", "train", DEMO, "--output", str(out), *extra]
    if kill_at_write:
        command[1:3] = ["-c", KILL_INSIDE_CHECKPOINT_WRITE, str(kill_at_write)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


KILL_INSIDE_CHECKPOINT_WRITE = """
import os, signal, sys
target, seen, real_fsync = int(sys.argv.pop(1)), [], os.fsync
def fsync(fd):
    if "safetensors" in os.readlink(f"/proc/self/fd/{fd}"):
        seen.append(fd)
        if len(seen) == target:
            os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)
os.fsync = fsync
from lstm_tagger.cli import app
sys.argv[0] = "lstm-tag"
app()
"""
"""A child that runs the CLI with ``os.fsync`` wrapped: it dies at the n-th fsync of a checkpoint's
temporary file, so a kill inside a checkpoint write happens on every machine, fast or slow."""


def epochs_written(out: Path) -> int:
    try:
        return len((out / "metrics.jsonl").read_text().splitlines())
    except FileNotFoundError:
        return 0


def wait_for_epochs(process: subprocess.Popen, out: Path, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while epochs_written(out) < count:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "training did not get that far in time"
        time.sleep(0.05)


def without_timings(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "second" not in k} for r in records]


def test_resume_after_kill_equals_a_straight_run(tmp_path):
    epochs = ["--set", "train.epochs=6"]
    straight = start_train(tmp_path / "straight", *epochs)
    assert straight.wait(timeout=900) == 0, straight.stderr.read().decode()

    killed = start_train(tmp_path / "killed", *epochs)
    wait_for_epochs(killed, tmp_path / "killed", 3)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert epochs_written(tmp_path / "killed") < 6
    resumed = start_train(tmp_path / "killed", *epochs, "--resume")
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read().decode()

    for name in (LAST, BEST):
        a = load_checkpoint(tmp_path / "straight" / name).model.state_dict()
        b = load_checkpoint(tmp_path / "killed" / name).model.state_dict()
        assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a), name
    assert without_timings(tmp_path / "straight") == without_timings(tmp_path / "killed")
    report = lambda d: json.loads((d / "report.json").read_text())["results"]  # noqa: E731
    assert report(tmp_path / "straight") == report(tmp_path / "killed")


def test_kill_loop_never_leaves_a_bad_checkpoint(tmp_path):
    """20 kill -9 at moments chosen by what training has done, 40 epochs to go.

    Each round resumes the run and is killed either from outside, right after its k-th new
    epoch line (k in 1..2: while the next epoch trains), or from inside, in its n-th checkpoint
    write (n in 1..3). Every epoch writes at least one checkpoint, so no round gets more than two
    epochs further and every round kills a running trainer, however fast the machine is. After
    each kill every checkpoint loads; at the end ``--resume`` completes the run.
    """
    out = tmp_path / "run"
    chooser = random.Random(7)
    settings = ["--set", "train.epochs=40", "--set", "train.patience=0"]
    first = start_train(out, *settings)
    wait_for_epochs(first, out, 1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    outcomes = {"killed": 1, "killed inside a checkpoint write": 0, "finished": 0}
    for _ in range(19):
        if chooser.random() < 0.5:
            process = start_train(out, *settings, "--resume")
            wait_for_epochs(process, out, epochs_written(out) + chooser.randint(1, 2))
            process.send_signal(signal.SIGKILL)
        else:
            process = start_train(out, *settings, "--resume", kill_at_write=chooser.randint(1, 3))
            assert process.wait(timeout=600) == -signal.SIGKILL, process.stderr.read().decode()
            assert list(out.glob(".*.safetensors.*")), "the kill left no temporary checkpoint file"
            outcomes["killed inside a checkpoint write"] += 1
        outcomes["killed" if process.wait() == -signal.SIGKILL else "finished"] += 1
        for checkpoint in out.glob("*.safetensors"):
            load_checkpoint(checkpoint)  # raises on a torn file
    assert outcomes["killed"] >= 15 and outcomes["killed inside a checkpoint write"] >= 5, outcomes
    assert epochs_written(out) < 40
    final = start_train(out, *settings, "--resume")
    assert final.wait(timeout=900) == 0, final.stderr.read().decode()
    assert epochs_written(out) == 40
    assert load_checkpoint(out / LAST).train_state["epoch"] == 40


def test_second_trainer_is_refused_and_a_dead_ones_lock_taken_over(tmp_path):
    out = tmp_path / "run"
    first = start_train(out, "--set", "train.epochs=200", "--set", "train.patience=0")
    try:
        wait_for_epochs(first, out, 1)
        result = runner.invoke(app, ["train", DEMO, "--output", str(out), "--force", "--set", "train.epochs=1"])
        assert result.exit_code == 2
        assert f"another lstm-tag train (pid {first.pid}) is using this run directory" in result.stderr
        result = runner.invoke(app, ["train", DEMO, "--output", str(out), "--resume", "--set", "train.epochs=200"])
        assert result.exit_code == 2 and "another lstm-tag train" in result.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (out / ".lock").exists()  # left behind by the killed trainer
    result = runner.invoke(app, ["train", DEMO, "--output", str(out), "--resume", "--set", "train.epochs=2", "--set", "train.patience=0"])
    assert result.exit_code == 0, result.output


class _Evil:
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_checkpoint_executes_nothing(tmp_path, writer):
    target = tmp_path / "pwned"
    evil = tmp_path / "model-best.safetensors"
    payload = {"weights": _Evil(target)}
    if writer == "pickle":
        evil.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, evil)
    for command in (["predict", "--model", str(evil), "hello"], ["eval", "--model", str(tmp_path)]):
        result = runner.invoke(app, command)
        assert_one_line_error(result, "not an lstm-tag checkpoint")
    assert not target.exists()


@pytest.fixture(scope="module")
def small_checkpoint(trained_run) -> Path:
    return trained_run("tiny", "train.epochs=2") / BEST


def _rewrite(source: Path, target: Path, **metadata_changes) -> Path:
    data = source.read_bytes()
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + size])["__metadata__"]
    for key, change in metadata_changes.items():
        metadata[key] = change(metadata[key])
    target.write_bytes(save_tensors(load_tensors(data), metadata=metadata))
    return target


def test_newer_format_and_mismatched_shapes(small_checkpoint, tmp_path):
    newer = _rewrite(small_checkpoint, tmp_path / "newer.safetensors", format_version=lambda v: "99")
    result = runner.invoke(app, ["predict", "--model", str(newer), "hi"])
    assert result.exit_code == 2 and f"checkpoint format 99 is newer than this lstm-tag reads ({FORMAT_VERSION})" in result.stderr

    def bigger(config: str) -> str:
        data = json.loads(config)
        data["model"]["hidden_dim"] += 1
        return json.dumps(data)

    wrong = _rewrite(small_checkpoint, tmp_path / "wrong.safetensors", config=bigger)
    result = runner.invoke(app, ["eval", "--model", str(wrong)])
    assert result.exit_code == 2
    assert "weights do not match the hyper-parameters and vocabulary sizes stored with them" in result.stderr


def test_divergence_stops_cleanly_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    config = tiny_config(tmp_path)
    result = runner.invoke(
        app, ["train", str(config), "--output", str(tmp_path / "absurd"), "--set", "train.lr=1e30", "--set", "train.grad_clip=0"]
    )
    assert result.exit_code == 2
    assert "training diverged at epoch" in result.stderr and "lower train.lr" in result.stderr

    from lstm_tagger.model.tagger import Tagger

    real = Tagger.loss
    calls = {"n": 0}

    def poisoned(self, *args):
        calls["n"] += 1
        loss = real(self, *args)
        return loss * float("nan") if calls["n"] > 1 else loss  # the tiny corpus is one batch an epoch

    monkeypatch.setattr(Tagger, "loss", poisoned)
    with pytest.raises(UserError, match="training diverged at epoch 2"):
        train(load_config(config), tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / LAST).metrics["epoch"] == 1
    assert load_checkpoint(tmp_path / "run" / BEST).metrics["epoch"] == 1


def test_full_disk_gives_a_clear_error_and_keeps_earlier_checkpoints(tmp_path, monkeypatch):
    import lstm_tagger.files as files

    real = os.replace
    calls = {"n": 0}

    def full(src, dst):
        calls["n"] += 1
        if calls["n"] > 5:  # config, best, last, metrics of epoch 1, then the disk fills up
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", full)
    result = runner.invoke(app, ["train", str(tiny_config(tmp_path)), "--output", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "cannot write: No space left on device" in result.stderr
    assert load_checkpoint(tmp_path / "run" / LAST).metrics["epoch"] == 1
    assert not list((tmp_path / "run").glob(".*.tmp"))  # no temporary file left behind
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    result = runner.invoke(app, ["train", str(tiny_config(tmp_path)), "--output", str(blocked / "run")])
    assert result.exit_code == 2 and "cannot create output directory" in result.stderr


def test_long_sentence_and_large_input(small_checkpoint, tmp_path):
    long_sentence = " ".join(["the", "dog", "ate", "apple"] * 2500)  # 10,000 tokens
    result = runner.invoke(app, ["predict", "--model", str(small_checkpoint), long_sentence])
    assert result.exit_code == 0 and len(result.stdout.split()) == 10_000
    big = tmp_path / "big.txt"
    line = "The dog ate the apple and everybody read that book .\n"  # 11 tokens
    with big.open("w") as handle:
        for _ in range(5_000_000 // 11 + 1):
            handle.write(line)
    process = subprocess.run(
        [sys.executable, "-m", "lstm_tagger", "predict", "--model", str(small_checkpoint), "--file", str(big)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    assert process.returncode == 0, process.stderr.decode()
    lines = process.stdout.count(b"\n")
    assert lines == 5_000_000 // 11 + 1
