"""Smoke test on real data: UD English EWT, read from ../shared (never copied into the repo)."""

import os
from pathlib import Path

import pytest

from lstm_tagger import load_config, train
from lstm_tagger.corpus.conllu import read_blocks

from conftest import ROOT

EWT = Path(os.environ.get("LSTM_TAG_EWT", ROOT.parent / "shared" / "data" / "ud_english_ewt"))

pytestmark = pytest.mark.skipif(
    not (EWT / "en_ewt-ud-train.conllu").is_file(),
    reason=f"UD English EWT not found in {EWT} (set LSTM_TAG_EWT to its folder)",
)


def test_ewt_one_epoch_on_2000_sentences(tmp_path):
    with open(EWT / "en_ewt-ud-train.conllu", "rb") as handle:  # the first 2000 sentences as they stand
        train_2000 = [block for block in read_blocks(handle, "train") if block.words][:2000]
    (tmp_path / "train.conllu").write_text("".join("".join(block.lines) for block in train_2000), encoding="utf-8")
    config = load_config(
        ROOT / "configs" / "ud_ewt.yaml",
        [
            f"data.train={tmp_path / 'train.conllu'}",
            f"data.dev={EWT / 'en_ewt-ud-dev.conllu'}",
            "data.test=null",
            "train.epochs=1",
            "tokenizer.mode=off",  # the tagger's smoke test; the segmenter has its own tests
        ],
    )
    result = train(config, tmp_path / "run", progress=False)
    dev = result.report["results"]["dev"]
    assert dev["tokens"] == 25147  # the whole EWT v2.15 dev set, multiword ranges skipped
    # NOUN, the most frequent tag, is 16.7% of dev tokens: an untrained model cannot reach this
    assert dev["accuracy"] > 0.60
    assert list(dev["columns"]) == ["upos", "xpos", "feats"] and 0 < dev["all_tags"]["accuracy"] <= dev["accuracy"]
