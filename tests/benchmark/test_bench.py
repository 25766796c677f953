"""``lstm-tag bench`` on the demo config with tiny settings, and the FLOP count against the equations.

Only that every figure is there, of the right type and plausible is checked: speeds
depend on the machine and its load.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger.benchmark.bench import bench
from lstm_tagger.benchmark.measure import cycled_lines, run_measured, write_text_file, write_token_file
from lstm_tagger.checkpoint import load_checkpoint
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.cli import app
from lstm_tagger.errors import UserError
from lstm_tagger.benchmark.flops import flops_per_token, forward_flops
from lstm_tagger.runs import upos_on_test

from conftest import CLASSIC, ROOT, assert_one_line_error

runner = CliRunner()
DEMO = ROOT / "configs" / "demo.yaml"
TOKENS = 2000

TAG_RUN_KEYS = {"batch_size", "sentences", "tokens", "tokens_per_second", "wall_seconds", "peak_rss_mib"}
RAW_RUN_KEYS = {"paragraphs", "tokens", "sentences_found", "words_found", "tokens_per_second", "wall_seconds", "peak_rss_mib"}


@pytest.fixture(scope="module")
def demo_bench(tmp_path_factory) -> tuple[dict, Path, Path]:
    """bench() on the demo config: 2 epochs, 2,000 tokens; -> (result, JSON file, run directory)."""
    tmp = tmp_path_factory.mktemp("bench")
    output, run_dir = tmp / "out" / "bench.json", tmp / "run"
    lines: list[str] = []
    result = bench(DEMO, ["train.batch_size=16"], tokens=TOKENS, epochs=2, output=output, run_dir=run_dir,
                   latency_sentences=100, say=lines.append)
    assert any("training" in line for line in lines) and any("latency" in line for line in lines)
    return result, output, run_dir


def check_result(result: dict, trained: bool) -> None:
    assert set(result) == {
        "config", "recipe", "overrides", "corpus", "machine", "train", "model", "tagging", "latency", "matmul", "achieved", "contended",
    }
    assert result["contended"] is False and result["recipe"] == "demo"
    machine = result["machine"]
    assert {"cpu", "cores", "torch_threads", "torch", "python", "date", "load_average"} <= set(machine)
    assert machine["cores"] >= 1 and machine["torch_threads"] >= 1 and machine["torch"] == torch.__version__

    if trained:
        t = result["train"]
        assert t["epochs"] == 2 and len(t["tokens_per_second_by_epoch"]) == 2
        assert t["tokens_per_second"] == t["tokens_per_second_by_epoch"][1]  # median of the epochs after the first
        assert t["tokens_per_second"] > 0 and t["wall_seconds"] > 0 and t["peak_rss_mib"] > 10
    else:
        assert result["train"] is None and result["achieved"]["train_fraction_of_square"] is None

    tagging = result["tagging"]
    assert set(tagging["default_batch"]) == TAG_RUN_KEYS and set(tagging["batch_1"]) == TAG_RUN_KEYS
    assert tagging["default_batch"]["batch_size"] == 256 and tagging["batch_1"]["batch_size"] == 1
    for run in (tagging["default_batch"], tagging["batch_1"]):
        assert TOKENS <= run["tokens"] < TOKENS + 100 and run["sentences"] > 0
        assert run["tokens_per_second"] > 0 and run["wall_seconds"] > 0 and run["peak_rss_mib"] > 10
    assert tagging["scale_check"] is None
    raw = tagging["raw_text"]  # the demo model has a segmenter: its raw text is tagged too
    assert set(raw) == RAW_RUN_KEYS and raw["tokens"] >= TOKENS and raw["paragraphs"] > 0
    assert raw["sentences_found"] > 0 and raw["words_found"] > 0
    assert raw["tokens_per_second"] > 0 and raw["peak_rss_mib"] > 10 and tagging["raw_text_scale_check"] is None

    latency = result["latency"]
    assert latency["sentences"] == 100 and latency["distinct_sentences"] > 10
    assert 0 < latency["median_ms"] <= latency["p95_ms"] <= latency["max_ms"]

    model = result["model"]
    report = json.loads((Path(model["path"]).parent / "report.json").read_text())  # the run's, scored on the demo test set
    assert model["test_upos"] == report["results"]["test"]["columns"]["upos"]["accuracy"] and 0 < model["test_upos"] < 1
    assert model["test_data"] == report["results"]["test"]["data"] == str(ROOT / "data" / "demo" / "test.conllu")
    checkpoint = load_checkpoint(model["path"])
    assert model["parameters"] == sum(p.numel() for p in checkpoint.model.parameters())
    assert model["flops_per_token"] > 0 and model["counted_by_flop_counter"] > 0 and model["tokens"] > 0
    assert isinstance(model["added_analytically"], dict)

    for shape in ("square", "model_shape"):
        mm = result["matmul"][shape]
        assert mm["gflops"] > 0 and mm["repeats"] >= 5 and len(mm["shape"]) == 3
    assert result["matmul"]["square"]["shape"] == [1024, 1024, 1024]
    achieved = result["achieved"]
    assert achieved["backward_factor"] == 3 and 0 < achieved["tag_fraction_of_square"]
    if trained:
        assert 0 < achieved["train_fraction_of_square"] and 0 < achieved["train_fraction_of_model_shape"]


def test_bench_function_writes_every_figure(demo_bench):
    result, output, run_dir = demo_bench
    check_result(result, trained=True)
    assert json.loads(output.read_text()) == json.loads(json.dumps(result))
    assert result["model"]["path"] == str(run_dir / BEST) and result["overrides"] == ["train.batch_size=16"]
    assert load_checkpoint(run_dir / BEST).config.train.batch_size == 16  # the override reached the training run


def test_bench_cli_with_a_given_model(demo_bench, tmp_path):
    _, _, run_dir = demo_bench
    output = tmp_path / "cli.json"
    result = runner.invoke(app, [
        "bench", str(DEMO), "--model", str(run_dir), "--tokens", str(TOKENS), "--small-batch-tokens", str(TOKENS),
        "--latency-sentences", "100", "--output", str(output),
    ])
    assert result.exit_code == 0, result.output
    assert "FLOPs per token" in result.stdout and f"bench written to {output}" in result.stdout
    assert "bench: tagging" in result.stderr and "bench: training" not in result.stderr
    written = json.loads(output.read_text())
    check_result(written, trained=False)

    # lstm-tag frontier reads it back: the demo's test set is not EWT's, so the other systems stay out
    plotted = runner.invoke(app, ["frontier", str(output), "--output", str(tmp_path / "f.png"), "--json"])
    assert plotted.exit_code == 0, plotted.output
    (point,) = json.loads(plotted.stdout)["points"]
    assert point["label"] == "demo" and point["source"] == str(output) and point["system"] == "lstm-tag"
    assert point["test_upos"] == written["model"]["test_upos"]
    assert point["tokens_per_second"] == written["tagging"]["default_batch"]["tokens_per_second"]
    assert "left out" in plotted.stderr and (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_only_a_runs_best_checkpoint_has_its_test_accuracy(demo_bench, tmp_path):
    _, _, run_dir = demo_bench
    assert upos_on_test(run_dir / BEST)["test_upos"] is not None
    assert upos_on_test(run_dir / LAST) == {"test_upos": None, "test_data": None}  # the report scored the best one
    lone = tmp_path / BEST
    lone.write_bytes((run_dir / BEST).read_bytes())  # a checkpoint away from its run
    assert upos_on_test(lone) == {"test_upos": None, "test_data": None}


@pytest.mark.parametrize("args, message", [
    (["nowhere.yaml"], "nowhere.yaml: config file not found"),
    ([str(DEMO), "--set", "model.hidden_dim=0"], "model.hidden_dim: must be > 0"),
    ([str(DEMO), "--model", "nowhere.safetensors"], "nowhere.safetensors: checkpoint not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    result = runner.invoke(app, ["bench", *args, "--output", str(tmp_path / "b.json")])
    assert_one_line_error(result, message)
    assert not (tmp_path / "b.json").exists()


def test_help_has_examples():
    result = runner.invoke(app, ["bench", "--help"])
    assert result.exit_code == 0 and "Examples" in result.stdout


def test_cycled_input_reaches_the_token_count(tmp_path):
    sentences = [s for s, _ in CLASSIC]  # 5 and 4 tokens
    assert list(cycled_lines(sentences, 12)) == ["The dog ate the apple", "Everybody read that book", "The dog ate the apple"]
    assert write_token_file(tmp_path / "in.txt", sentences, 9) == (2, 9)
    assert (tmp_path / "in.txt").read_text().splitlines() == ["The dog ate the apple", "Everybody read that book"]


def test_raw_text_input_is_paragraphs_cycled_to_the_token_count(tmp_path):
    paragraphs = [("Don't stop. Go on.", 6), ("   ", 0), ("Yes!", 2)]  # (text, gold words); a blank one is skipped
    assert write_text_file(tmp_path / "in.txt", paragraphs, 9) == (3, 14)
    assert (tmp_path / "in.txt").read_text() == "Don't stop. Go on.\n\nYes!\n\nDon't stop. Go on.\n"
    with pytest.raises(UserError, match="no raw text"):
        write_text_file(tmp_path / "none.txt", [("", 0)], 5)


@pytest.fixture(scope="module")
def hand_lstm_run(trained_run) -> Path:
    """A 2-layer BiLSTM tagger with the hand-written cell (counted op by op), trained one epoch."""
    cell = ["model.cell=hand_lstm", "model.num_layers=2", "model.embedding_dim=12", "model.hidden_dim=10"]
    return trained_run("tiny", *cell, "train.epochs=1") / BEST


def test_analytic_count_agrees_with_flop_counter_on_hand_lstm(hand_lstm_run):
    checkpoint = load_checkpoint(hand_lstm_run)
    sentences = [CLASSIC[0][0]] * 3  # equal lengths: no padding, so every position is a real token
    measured = flops_per_token(checkpoint, sentences)
    assert measured["added_analytically"] == {}  # nothing fused: FlopCounterMode saw every product
    # per token: layer 1 2*4*10*(12+10), layer 2 2*4*10*(20+10), two directions; output 2*20*K
    num_tags = checkpoint.model.output.out_features
    expected = 2 * (2 * 4 * 10 * (12 + 10) + 2 * 4 * 10 * (20 + 10)) + 2 * 20 * num_tags
    assert measured["flops_per_token"] == pytest.approx(expected, rel=1e-3)

    # the same weights on PyTorch's fused kernel: counted by the counter or added analytically, same total
    fused = flops_per_token(load_checkpoint(hand_lstm_run, cell="lstm"), sentences)
    assert fused["flops_per_token"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("cell, gates", [("lstm", 4), ("gru", 3)])
def test_fused_kernel_passes_are_counted(cell, gates):
    """The fused dense kernel that FlopCounterMode does not see into: the total is still the equations'."""
    from lstm_tagger.model.tagger import RecurrentEncoder

    encoder = RecurrentEncoder(cell, 6, 5, num_layers=2, bidirectional=True, dropout=0.0).eval()
    inputs = torch.randn(3, 7, 6)
    count = forward_flops(encoder, lambda: encoder(inputs, torch.tensor([7, 7, 7])))
    per_position = 2 * (2 * gates * 5 * (6 + 5) + 2 * gates * 5 * (10 + 5))
    assert count.total == pytest.approx(3 * 7 * per_position, rel=1e-3)
    if cell == "lstm":
        assert count.added  # added analytically: the counter alone misses the fused LSTM kernel



def test_busy_neighbour_runs_one_busy_process_for_the_block_only():
    from lstm_tagger.benchmark.measure import busy_neighbour

    def children() -> set[int]:
        me = os.getpid()
        found = set()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                    found.add(int(entry.name))
        return found

    before = children()
    with busy_neighbour(True):
        (busy,) = children() - before
        assert "while True: pass" in Path(f"/proc/{busy}/cmdline").read_bytes().decode().replace("\0", " ")
    assert busy not in children()
    with busy_neighbour(False):
        assert children() == before


def test_a_childs_peak_memory_is_its_own_not_this_process(tmp_path):
    ballast = b"x" * (300 << 20)  # this process holds 300 MiB more than a bare Python
    run = run_measured([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "out", tmp_path / "err")
    assert len(ballast) and run.returncode == 3
    assert 0 < run.peak_rss_kib < 100 * 1024
