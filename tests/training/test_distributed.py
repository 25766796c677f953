"""Data-parallel training: the sharing of batches, the loss weights, and real 2-process runs on CPU.

The runs go through torchrun (``python -m torch.distributed.run``) with gloo over loopback,
except the error cases: those start the two ranks as plain processes with torchrun's
environment, so that no launcher kills a rank that would otherwise wait forever.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lstm_tagger import load_checkpoint, load_config, train
from lstm_tagger.rundir import LAST
from lstm_tagger.config import ModelConfig
from lstm_tagger.corpus.reader import collate
from lstm_tagger.training.distributed import DEBUG_WEIGHTS, World
from lstm_tagger.errors import ConfigError, UserError
from lstm_tagger.model.tagger import Tagger
from lstm_tagger.training.loop import resolve_device

from conftest import ROOT, same_tensors

DEMO = ROOT / "configs" / "demo.yaml"
EXACT = ["train.epochs=2", "train.batch_size=7", "model.dropout=0", "train.word_dropout=0"]
"""Without dropout, 2 ranks follow one process's optimisation; batches of 7 split 4 + 3 sentences."""

WEIGHT_TOLERANCE = 1e-5
"""Largest allowed |weight difference| between the 2-process and the 1-process run after 2 epochs
(65 SGD steps). Observed: about 2.4e-7 (float rounding: the gradient is summed in another order).
Averaging the ranks' gradients without the token weights is off by about 2e-3 to 3e-2."""


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", DEBUG_WEIGHTS)}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def torchrun(output: Path, sets: list[str], *extra: str, env: dict[str, str] | None = None, logs: Path | None = None):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    if logs is not None:
        command += ["--log-dir", str(logs), "--redirects", "3"]  # each rank's stdout and stderr in its own file
    command += ["-m", "lstm_tagger", "train", str(DEMO), "--output", str(output), "--no-progress", *extra]
    for item in sets:
        command += ["--set", item]
    return subprocess.run(command, cwd=output.parent, env=env or environment(), capture_output=True, text=True, timeout=900)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model.state_dict()


def losses_and_accuracies(run: Path) -> list[tuple[float, float]]:
    return [(r["train_loss"], r["dev_accuracy"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


# --- sharing a batch -------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 2, 5, 7, 8])
def test_every_sentence_of_a_batch_goes_to_exactly_one_rank(size, batch_size):
    lengths = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    batch = [9, 2, 7, 4, 0, 6, 1, 3][:batch_size]
    shares = [World(rank, size).share(batch, lengths) for rank in range(size)]
    real = [s for s in shares if s.weight > 0]
    assert sorted(i for s in real for i in s.sentences) == sorted(batch)
    assert {len(s.sentences) for s in real} <= {batch_size // size, -(-batch_size // size)}
    assert all(s.batch_tokens == sum(lengths[i] for i in batch) for s in shares)
    assert sum(s.weight for s in shares) == pytest.approx(size)  # the weights average to 1
    for s in shares:
        if s.weight == 0:  # fewer sentences than ranks: a stand-in that adds nothing
            assert s.sentences == batch[:1]


def test_one_process_takes_the_whole_batch():
    share = World().share([4, 2, 0], [5, 6, 7, 8, 9])
    assert (share.sentences, share.weight, share.batch_tokens) == ([4, 2, 0], 1.0, 9 + 7 + 5)


@pytest.mark.parametrize("output", ["softmax", "crf"])
def test_weighted_rank_gradients_average_to_the_whole_batch_gradient(output):
    """What DDP computes (the mean of the ranks' gradients) equals one process's gradient, in float64."""
    torch.manual_seed(0)
    model = Tagger(ModelConfig(embedding_dim=8, hidden_dim=8, output=output), num_words=30, num_tags=6).double()
    lengths = [1, 9, 3, 6, 2]
    words = [torch.randint(2, 30, (n,)) for n in lengths]
    tags = [torch.randint(0, 6, (n,)) for n in lengths]

    def gradient(sentences: list[int], weight: float) -> list[torch.Tensor]:
        model.zero_grad()
        batch = collate([words[i] for i in sentences], [tags[i] for i in sentences], pad=0)
        (model.loss(batch.words, batch.lengths, batch.tags) * weight).backward()
        return [p.grad.clone() for p in model.parameters()]

    def rank_mean(size: int, weighted: bool) -> list[torch.Tensor]:
        shares = [World(rank, size).share(list(range(len(lengths))), lengths) for rank in range(size)]
        grads = [gradient(s.sentences, s.weight if weighted else 1.0) for s in shares if weighted or s.weight > 0]
        return [sum(g) / len(grads) for g in zip(*grads)]

    def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return max((x - y).abs().max().item() for x, y in zip(a, b))

    whole = gradient(list(range(len(lengths))), 1.0)
    for size in (2, 3, 4, 7):  # 7 ranks for 5 sentences: two stand-ins
        assert max_diff(rank_mean(size, weighted=True), whole) < 1e-12
    assert max_diff(rank_mean(2, weighted=False), whole) > 1e-3  # a plain average is not the same


# --- the environment and the device ----------------------------------------------------


def test_world_from_the_torchrun_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert World.from_env() == World() and not World().distributed
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert World.from_env() == World()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = World.from_env()
    assert (world.rank, world.size, world.local_rank, world.distributed, world.is_main) == (3, 4, 1, True, False)
    monkeypatch.setenv("RANK", "three")
    with pytest.raises(UserError, match="RANK='three' is not a number"):
        World.from_env()


def test_auto_and_cuda_take_the_gpu_of_the_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for device in ("auto", "cuda"):
        config = load_config(DEMO, [f"train.device={device}"])
        assert resolve_device(config) == torch.device("cuda")
        assert resolve_device(config, local_rank=1) == torch.device("cuda", 1)
        with pytest.raises(ConfigError, match="local rank 2 needs cuda:2"):
            resolve_device(config, local_rank=2)
    assert resolve_device(load_config(DEMO, ["train.device=cpu"]), local_rank=1) == torch.device("cpu")


# --- real runs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One process in-process and two with torchrun, the same config without dropout."""
    root = tmp_path_factory.mktemp("ddp")
    train(load_config(DEMO, EXACT), root / "single", progress=False)
    (root / "cwd").mkdir()
    env = environment(**{DEBUG_WEIGHTS: str(root / "ranks")})
    done = torchrun(root / "cwd" / "two", EXACT, env=env, logs=root / "logs")
    assert done.returncode == 0, done.stderr
    return root


def test_two_ranks_end_with_identical_weights(runs):
    assert sorted(p.name for p in (runs / "ranks").iterdir()) == ["rank0.safetensors", "rank1.safetensors"]
    rank0, rank1 = load_file(runs / "ranks" / "rank0.safetensors"), load_file(runs / "ranks" / "rank1.safetensors")
    assert same_tensors(rank0, rank1)
    last = weights(runs / "cwd" / "two" / LAST)
    assert all(torch.equal(rank0[k], last[k]) for k in last)


def test_two_ranks_follow_one_process(runs):
    single, two = weights(runs / "single" / LAST), weights(runs / "cwd" / "two" / LAST)
    difference = max((single[k] - two[k]).abs().max().item() for k in single)
    assert difference < WEIGHT_TOLERANCE
    expected, got = losses_and_accuracies(runs / "single"), losses_and_accuracies(runs / "cwd" / "two")
    assert len(expected) == len(got) == 2
    for (loss_a, acc_a), (loss_b, acc_b) in zip(expected, got):
        assert loss_a == pytest.approx(loss_b, abs=1e-5)
        assert acc_a == pytest.approx(acc_b, abs=1.5 / 419)  # at most one of the 419 dev tokens


def test_only_rank_0_writes_and_prints(runs):
    two, single = runs / "cwd" / "two", runs / "single"
    assert [p.name for p in (runs / "cwd").iterdir()] == ["two"]  # nothing beside the run directory
    assert {p.name for p in two.iterdir()} == {p.name for p in single.iterdir()}
    log = [line.split(" ", 1)[1] for line in (two / "train.log").read_text().splitlines()]
    assert len(log) == len(set(log)) and sum(line.startswith("epoch ") for line in log) == 2
    assert "data-parallel over 2 processes: each takes 1/2 of every batch of 7 sentences" in log
    (rank0,) = runs.glob("logs/*/attempt_0/0")
    (rank1,) = runs.glob("logs/*/attempt_0/1")
    assert "run written to" in (rank0 / "stdout.log").read_text()
    assert (rank1 / "stdout.log").read_text() == "" and (rank1 / "stderr.log").read_text() == ""


def test_resume_with_two_ranks_equals_a_straight_run(tmp_path):
    """With dropout and word dropout on: each rank's random numbers are re-seeded per epoch."""
    straight = torchrun(tmp_path / "straight", ["train.epochs=2"])
    assert straight.returncode == 0, straight.stderr
    first = torchrun(tmp_path / "resumed", ["train.epochs=1"])
    assert first.returncode == 0, first.stderr
    resumed = torchrun(tmp_path / "resumed", ["train.epochs=2"], "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(tmp_path / "straight" / LAST), weights(tmp_path / "resumed" / LAST)
    assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    assert losses_and_accuracies(tmp_path / "straight") == losses_and_accuracies(tmp_path / "resumed")


# --- errors: no rank waits forever, rank 0 prints one line -------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ranks(configs: list[Path], output: Path) -> list[subprocess.CompletedProcess]:
    """Two ranks as plain processes with torchrun's environment; both must end on their own."""
    port = str(free_port())
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "lstm_tagger", "train", str(config), "--output", str(output), "--no-progress"],
            env=environment(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for rank, config in enumerate(configs)
    ]
    try:
        return [subprocess.CompletedProcess(p.args, p.wait(timeout=600), *p.communicate()) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def test_an_error_of_rank_0_stops_every_rank(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    rank0, rank1 = start_ranks([DEMO, DEMO], tmp_path / "out")
    assert (rank0.returncode, rank1.returncode) == (2, 2)
    message = "output directory is not empty (use --force to train into it anyway)"
    assert rank0.stderr == f"lstm-tag: error: {tmp_path / 'out'}: {message}\n"
    assert (rank1.stdout, rank1.stderr, rank0.stdout) == ("", "", "")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_an_error_of_another_rank_is_reported_by_rank_0(tmp_path):
    """Rank 1 alone finds its training file malformed (as when one node holds another copy of the data)."""
    (tmp_path / "bad.conllu").write_text("1\tThe\n")
    broken = tmp_path / "broken.yaml"
    text = DEMO.read_text().replace("../data/demo/", f"{ROOT}/data/demo/")
    broken.write_text(text.replace(f"{ROOT}/data/demo/train.conllu", str(tmp_path / "bad.conllu")))
    rank0, rank1 = start_ranks([DEMO, broken], tmp_path / "out")
    assert (rank0.returncode, rank1.returncode) == (2, 2)
    message = "expected 10 tab-separated columns, found 2"
    assert rank0.stderr == f"lstm-tag: error: rank 1: {tmp_path / 'bad.conllu'}:1: {message}\n"
    assert (rank1.stdout, rank1.stderr) == ("", "")
    assert not (tmp_path / "out").exists()  # the data are checked before rank 0 creates the run directory
