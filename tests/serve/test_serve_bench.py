"""The server's load benchmark runs end to end (a real server on loopback, bounded in time) and
reports every figure; the figures themselves are measured alone on the machine, not here."""

from __future__ import annotations

import math

import pytest

import serving  # noqa: F401 -- skips without the serve extra

from conftest import CLASSIC, write_conllu  # noqa: E402
from lstm_tagger.benchmark.serve import bench_serve, table  # noqa: E402
from lstm_tagger.errors import UserError  # noqa: E402


def test_the_benchmark_reports_each_phase_memory_and_predicts_speed(tiny_run, tmp_path):
    data = write_conllu(tmp_path / "sentences.conllu", CLASSIC)
    result = bench_serve(tiny_run, data, clients=2, seconds=0.5, bulk_sentences=3, threads="1", predict_sentences=10)
    assert list(result["phases"]) == ["one sentence", "bulk"]
    for phase in result["phases"].values():
        assert phase["requests"] > 0 and phase["errors"] == 0
        assert phase["p50_ms"] <= phase["p99_ms"] and phase["tokens_per_second"] > 0 and phase["rss_mib_after"] > 0
    assert result["peak_rss_mib"] >= result["phases"]["bulk"]["rss_mib_after"]
    assert result["predict"]["sentences"] == 10 and result["predict"]["tokens_per_second"] > 0
    assert "3 sentences" in table(result) and "server peak RSS" in table(result)


def test_the_soak_mixes_both_requests_and_samples_the_servers_memory(tiny_run, tmp_path, monkeypatch):
    from lstm_tagger.benchmark import serve

    monkeypatch.setattr(serve, "SOAK_SAMPLE", 0.2)
    data = write_conllu(tmp_path / "sentences.conllu", CLASSIC)
    result = bench_serve(tiny_run, data, clients=2, seconds=0.3, bulk_sentences=3, threads="1", predict_sentences=0, soak=1.5)
    soak = result["soak"]
    assert soak["requests"] > 0 and soak["errors"] == 0 and soak["seconds"] == 1.5
    assert len(soak["rss_mib"]) >= 3 and all(mib > 0 for _, mib in soak["rss_mib"])
    assert "soak (1.5 s, 99 one-sentence requests to 1 bulk)" in table(result) and "predict" not in result


@pytest.mark.parametrize("arguments, message", [
    ({"soak": 601}, "soak=601: at least 0 and at most 600"),
    ({"clients": 0}, "clients=0: between 1 and 64"),
    ({"seconds": 601}, "seconds=601: above 0 and at most 600"),
    ({"bulk_sentences": 10_001}, "bulk_sentences=10001: between 1 and 10,000"),
])
def test_the_benchmark_is_bounded(tiny_run, arguments, message):
    with pytest.raises(UserError, match=f"^{message}$"):
        bench_serve(tiny_run, **arguments)


def test_percentiles_are_nearest_rank():
    from lstm_tagger.benchmark.measure import percentile

    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile([3.0], 99)) == (50.0, 99.0, 3.0)
    assert math.isnan(percentile([], 50))
