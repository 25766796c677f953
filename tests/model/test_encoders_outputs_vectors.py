"""End to end: character encoders (cnn, lstm), the CRF output layer and pretrained vectors.

Every model here is tiny and trains in a second or two; the corpora are written into
``tmp_path`` (or are the demo corpus with ``--set`` overrides).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import random
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from lstm_tagger import evaluate_model, load_checkpoint, load_config, tag, train
from lstm_tagger.training import loop as training
from lstm_tagger.model.chars import FormTable
from lstm_tagger.checkpoint import save_checkpoint
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.cli import app
from lstm_tagger.corpus.reader import read_corpus
from lstm_tagger.corpus.vocab import PAD, UNK, UNK_ID

from conftest import ROOT, assert_one_line_error, tiny_config

runner = CliRunner()
QUIET = Console(quiet=True)
DEMO = ROOT / "configs" / "demo.yaml"
DEMO_DEV = ROOT / "data" / "demo" / "dev.conllu"

# Small sentences where some words are ambiguous ("fish", "can"): the tag depends on the context.
SENTENCES = [
    ("The dog ate the apple", "DET NOUN VERB DET NOUN"),
    ("Everybody read that book", "PRON VERB DET NOUN"),
    ("I can fish", "PRON AUX VERB"),
    ("They fish in a can", "PRON VERB ADP DET NOUN"),
    ("That dog can read", "DET NOUN AUX VERB"),
    ("A fish can read", "DET NOUN AUX VERB"),
]
CORPUS = [(words.split(), tags.split()) for words, tags in SENTENCES]
WORDS = [words for words, _ in CORPUS]
GOLD = [tags for _, tags in CORPUS]
SMALL_CHARS = {"char_dim": 12, "char_hidden": 12}


def features_config(tmp_path: Path, sentences=CORPUS, model=None, train=None) -> Path:
    return tiny_config(tmp_path, sentences, model={**SMALL_CHARS, **(model or {})}, train=train or {})


def without_timings(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "second" not in k} for r in records]


@pytest.fixture(scope="module", autouse=True)
def no_plots():
    """The PNG plots (matplotlib, about 2 s per run) are tested elsewhere; skip drawing them here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importlib.import_module("lstm_tagger.evaluation.report"), "write_plots", lambda directory, report, history: {})
        yield


# 1. Overfitting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        {"char_encoder": "cnn"},
        {"char_encoder": "lstm"},
        {"output": "crf"},
        {"output": "crf", "char_encoder": "cnn"},
    ],
    ids=["chars-cnn", "chars-lstm", "crf", "crf+chars-cnn"],
)
def test_overfits_a_few_sentences_exactly(tmp_path, model):
    config = load_config(features_config(tmp_path, model=model))
    result = train(config, tmp_path / "run", progress=False, console=QUIET)
    assert result.best_dev_accuracy == 1.0
    checkpoint = load_checkpoint(tmp_path / "run" / BEST)
    assert (checkpoint.model.chars is not None) == ("char_encoder" in model)
    assert (checkpoint.model.crf is not None) == (model.get("output") == "crf")
    assert [t.tags for t in tag(checkpoint, WORDS)] == GOLD
    one_by_one = [tag(checkpoint, [words], batch_size=1)[0].tags for words in WORDS]
    assert one_by_one == GOLD


# 2. Characters tag unseen words ---------------------------------------------------------------


def _suffix_corpus() -> tuple[list, list]:
    """'it was X' where X is an adverb (-ly), a verb (-ing) or a name (capitalised): the context
    is always the same, so only the characters of X can tell its tag. Test stems are unseen."""
    rng = random.Random(0)
    stems: set[str] = set()
    while len(stems) < 66:
        stems.add("".join(rng.choice("bcdfgkmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 3))))
    ordered = sorted(stems)
    rng.shuffle(ordered)

    def sentences(group):
        out = []
        for stem in group:
            for form, tag_ in ((stem + "ly", "ADV"), (stem + "ing", "VERB"), (stem.capitalize(), "PROPN")):
                out.append((["it", "was", form], ["PRON", "AUX", tag_]))
        return out

    return sentences(ordered[:60]), sentences(ordered[60:])


@pytest.mark.parametrize("encoder", ["cnn", "lstm"])
def test_characters_tag_unseen_words_by_their_form(tmp_path, encoder):
    train_set, test_set = _suffix_corpus()
    config = load_config(features_config(
        tmp_path, train_set, model={"char_encoder": encoder, "char_dim": 16, "char_hidden": 16},
        train={"epochs": 12, "batch_size": 16, "lr": 0.2, "word_dropout": 0.5, "seed": 3},
    ))
    train(config, tmp_path / "run", progress=False, console=QUIET)
    checkpoint = load_checkpoint(tmp_path / "run" / LAST)
    unseen = [words[-1] for words, _ in test_set]
    assert len(unseen) == 18 and not any(word in checkpoint.words for word in unseen)  # all <unk> to the word embedding
    tagged = tag(checkpoint, [words for words, _ in test_set])
    wrong = [(t.words[-1], t.tags[-1]) for t, (_, gold) in zip(tagged, test_set) if t.tags != gold]
    assert wrong == []


# 3. Checkpoint round trip ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def chars_crf_run(tmp_path_factory):
    """A character-LSTM + CRF model trained with the library ``train()``; also returns the
    in-memory checkpoint object the trainer saved last (its model is the live, trained one)."""
    tmp = tmp_path_factory.mktemp("chars_crf")
    config = load_config(features_config(tmp, model={"char_encoder": "lstm", "output": "crf"}, train={"epochs": 25}))
    saved = {}
    real = training.save_checkpoint

    def spy(path, checkpoint):
        saved[Path(path).name] = checkpoint
        return real(path, checkpoint)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "save_checkpoint", spy)
        result = train(config, tmp / "run", progress=False, console=QUIET)
    assert result.best_dev_accuracy == 1.0 and result.epochs_run == 25
    return tmp / "run", saved[LAST]


def test_checkpoint_round_trip_with_chars_and_crf(chars_crf_run):
    run, in_memory = chars_crf_run
    loaded = load_checkpoint(run / LAST)
    sentences = [*WORDS, ["A", "cat", "can", "swim"], ["Zyzzyva", "quibbles"], []]
    expected = tag(in_memory, sentences, scores=True)
    got = tag(loaded, sentences, scores=True)
    assert [t.tags for t in got] == [t.tags for t in expected]
    for a, b in zip(got, expected):
        assert a.probs["upos"].shape == b.probs["upos"].shape
        assert torch.allclose(a.probs["upos"], b.probs["upos"], atol=1e-6, rtol=0)
    assert [t.tags for t in got[: len(WORDS)]] == GOLD
    # the checkpoint carries the character vocabulary: <pad>, <unk>, then every training character
    assert loaded.chars is not None and loaded.chars.itos == in_memory.chars.itos
    assert loaded.chars.itos[:2] == [PAD, UNK]
    assert set(loaded.chars.itos[2:]) == {c for words in WORDS for word in words for c in word}
    assert loaded.config.model.char_encoder == "lstm" and loaded.config.model.output == "crf"


def test_unknown_character_maps_to_unk(chars_crf_run):
    run, _ = chars_crf_run
    checkpoint = load_checkpoint(run / BEST)
    for c in "☃Ωß":
        assert c not in checkpoint.chars
    table = FormTable(checkpoint.chars, [["d☃g"]])
    stoi = checkpoint.chars.stoi
    assert table.forms[1, :3].tolist() == [stoi["d"], UNK_ID, stoi["g"]]
    # Two words that differ only by an unknown character are the same input: <unk> word, same chars.
    snowman, omega = tag(checkpoint, [["The", "d☃g", "ate"], ["The", "dΩg", "ate"]], scores=True)
    assert len(snowman.tags) == 3 and snowman.tags == omega.tags
    assert torch.equal(snowman.probs["upos"], omega.probs["upos"])
    # ... unlike a known character at that place
    known = tag(checkpoint, [["The", "dog", "ate"]], scores=True)[0]
    assert not torch.equal(known.probs["upos"], snowman.probs["upos"])


# 4. CRF --scores are marginals, tags are Viterbi ------------------------------------------------


def _brute_force(checkpoint, words):
    """Every tag path of one sentence scored from the model's emissions and the CRF's tables:
    -> (marginals (T, K) float64, best path as a list of tag ids)."""
    model = checkpoint.model
    ids = checkpoint.words.encode(words).unsqueeze(0)
    lengths = torch.tensor([len(words)])
    chars = FormTable(checkpoint.chars, [words]).batch([0]) if model.chars is not None else None
    with torch.inference_mode():
        emissions = model.emissions(ids, lengths, chars)[0].double()
    crf = model.crf
    start, end, moves = crf.start.detach().double(), crf.end.detach().double(), crf.transitions.detach().double()
    n, k = emissions.shape
    paths = torch.tensor(list(itertools.product(range(k), repeat=n)))  # (K**n, n)
    scores = start[paths[:, 0]] + end[paths[:, -1]] + emissions[torch.arange(n), paths].sum(1)
    scores = scores + moves[paths[:, :-1], paths[:, 1:]].sum(1)
    weights = torch.softmax(scores, dim=0)
    marginals = torch.zeros(n, k, dtype=torch.float64)
    for t in range(n):
        marginals[t].index_add_(0, paths[:, t], weights)
    return marginals, paths[scores.argmax()].tolist()


def test_crf_scores_are_marginals_and_tags_are_viterbi(chars_crf_run, tmp_path):
    run, _ = chars_crf_run
    checkpoint = load_checkpoint(run / BEST)
    tagset = checkpoint.tags.itos
    sentences = [*WORDS, ["A", "cat", "can", "swim"], ["fish", "can", "fish", "can"], ["Zyzzyva"]]
    text = "\n".join(" ".join(words) for words in sentences) + "\n"
    source = tmp_path / "in.txt"
    source.write_text(text, encoding="utf-8")
    plain = runner.invoke(app, ["predict", "-m", str(run), "--file", str(source)])
    scored = runner.invoke(app, ["predict", "-m", str(run), "--file", str(source), "--format", "json", "--scores"])
    assert plain.exit_code == 0 and scored.exit_code == 0, plain.output + scored.output
    viterbi = [[token.rsplit("/", 1)[1] for token in line.split()] for line in plain.stdout.splitlines()]
    records = [json.loads(line) for line in scored.stdout.splitlines()]
    assert len(records) == len(sentences) == len(viterbi)
    for words, record, tags in zip(sentences, records, viterbi):
        assert record["words"] == words
        assert record["upos"] == tags  # --scores does not change the chosen (Viterbi) tags
        assert len(record["scores"]["upos"]) == len(words)
        for row in record["scores"]["upos"]:
            assert set(row) == set(tagset)
            assert abs(sum(row.values()) - 1) < 1e-3  # four decimals per tag
        # against the model directly: Tagger.predict's Viterbi path and forward-backward marginals
        ids = checkpoint.words.encode(words).unsqueeze(0)
        chars = FormTable(checkpoint.chars, [words]).batch([0])
        with torch.inference_mode():
            best, logp = checkpoint.model.predict(ids, torch.tensor([len(words)]), chars, scores=True)
        assert checkpoint.tags.decode(best[0].tolist()) == tags
        table = torch.tensor([[row[t] for t in tagset] for row in record["scores"]["upos"]], dtype=torch.float64)
        assert torch.allclose(table, logp[0].exp().double(), atol=6e-5, rtol=0)
        # and against every path enumerated: the scores are the marginals, the tags the best path
        marginals, path = _brute_force(checkpoint, words)
        assert torch.allclose(table, marginals, atol=1e-4, rtol=0)
        assert checkpoint.tags.decode(path) == tags


def test_crf_text_scores_show_the_chosen_tags_probability(chars_crf_run, tmp_path):
    """With a CRF the chosen tag (Viterbi, best whole path) need not be the tag of highest
    marginal probability; ``--scores`` in text must still show the probability of the tag it prints."""
    run, _ = chars_crf_run
    checkpoint = load_checkpoint(run / BEST)
    model = checkpoint.model
    with torch.no_grad():  # emissions 0 for every token; the paths' probabilities come from the transitions alone
        model.output.weight.zero_()
        model.output.bias.zero_()
        model.crf.start.zero_()
        model.crf.end.zero_()
        model.crf.transitions.fill_(-30.0)
        for (a, b), p in {(0, 1): 0.3, (2, 3): 0.25, (2, 4): 0.25, (2, 5): 0.2}.items():
            model.crf.transitions[a, b] = math.log(p)
    # Best path (0, 1) with p = 0.3, but the first token's tag is 2 with p = 0.7 (three paths).
    save_checkpoint(tmp_path / "odd.safetensors", checkpoint)
    itos = checkpoint.tags.itos
    command = ["predict", "-m", str(tmp_path / "odd.safetensors"), "dog dog", "--scores"]
    record = json.loads(runner.invoke(app, [*command, "--format", "json"]).stdout)
    assert record["upos"] == [itos[0], itos[1]]
    assert record["scores"]["upos"][0][itos[0]] == pytest.approx(0.3, abs=1e-3)
    assert record["scores"]["upos"][0][itos[2]] == pytest.approx(0.7, abs=1e-3)
    text = runner.invoke(app, command)
    assert text.exit_code == 0, text.output
    shown = [token.rsplit(":", 1) for token in text.stdout.split()]
    assert [t.split("/")[1] for t, _ in shown] == record["upos"]
    for (token, probability), scores, chosen in zip(shown, record["scores"]["upos"], record["upos"]):
        assert float(probability) == pytest.approx(scores[chosen], abs=1e-3), token


# 5. eval through the CLI -------------------------------------------------------------------------


@pytest.mark.parametrize("model", [{"output": "crf"}, {"char_encoder": "cnn"}], ids=["crf", "chars-cnn"])
def test_eval_cli_on_crf_and_char_models(tmp_path, model):
    config = features_config(tmp_path, model=model, train={"epochs": 12})
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(config), "--output", str(run), "--quiet"])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["eval", "--model", str(run), "--data", str(DEMO_DEV), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    expected = evaluate_model(run, DEMO_DEV)
    assert scores["accuracy"] == expected["accuracy"]
    assert scores["tokens"] == expected["tokens"] == 419
    # the same figure counted by hand from tag()
    gold = read_corpus(DEMO_DEV)
    tagged = tag(load_checkpoint(run / BEST), [s.words for s in gold])
    correct = sum(p == g for s, t in zip(gold, tagged) for p, g in zip(t.tags, s.tags))
    assert scores["accuracy"] == correct / 419 and 0 < correct < 419
    table = runner.invoke(app, ["eval", "--model", str(run), "--data", str(DEMO_DEV)])
    assert table.exit_code == 0 and f"{100 * scores['accuracy']:.2f}" in table.stdout
    info = runner.invoke(app, ["info", str(run), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["model"] == load_checkpoint(run / BEST).config.model.model_dump(mode="json")


# 6. Pretrained vectors ----------------------------------------------------------------------------

DIM = 16  # tiny_config's model.embedding_dim
FILE_WORDS = ["the", "dog", "fish", "cat", "zebra", "quickly"]  # "the" also stands for "The"; the last three are not training words


def vector_rows(seed: int, count: int = len(FILE_WORDS), dim: int = DIM) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.randint(-64, 64) / 32 for _ in range(dim)] for _ in range(count)]  # exact in float32


def write_vectors(path: Path, rows, words=FILE_WORDS, header: bool = True) -> Path:
    lines = [f"{len(words)} {len(rows[0])}"] if header else []
    lines += [" ".join([word, *(repr(v) for v in row)]) for word, row in zip(words, rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "header, freeze, max_words, dim",
    [(True, True, None, DIM), (False, False, 5, DIM - 8)],
    ids=["word2vec-frozen", "glove-trained-max5-smaller"],
)
def test_pretrained_vectors_end_to_end(tmp_path, header, freeze, max_words, dim):
    """A file's vectors (of any size) fill the pretrained table beside the trainable embedding, a row per
    vocabulary word; frozen, the table never moves (float16); fine-tuned, the rows of training words do."""
    rows = vector_rows(7, dim=dim)
    expected = {word: torch.tensor(row, dtype=torch.float32) for word, row in zip(FILE_WORDS, rows)}
    path = write_vectors(tmp_path / "vecs.txt", rows, header=header)
    model = {"vectors": "vecs.txt", "freeze_vectors": freeze}
    if max_words is not None:
        model["vectors_max_words"] = max_words
    config = features_config(tmp_path, model=model, train={"epochs": 10})
    trained = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--quiet"])
    assert trained.exit_code == 0, trained.output
    checkpoint = load_checkpoint(tmp_path / "run" / LAST)
    itos = checkpoint.words.itos
    used = FILE_WORDS[: max_words or len(FILE_WORDS)]
    extras = [w for w in used if w in ("cat", "zebra", "quickly")]
    assert itos[-len(extras):] == extras  # file words unseen in training join the vocabulary, in file order
    assert checkpoint.words.trained == len(itos) - len(extras)
    assert all(w not in checkpoint.words for w in FILE_WORDS if w not in used)
    embed = checkpoint.model.embed
    assert embed.embedding.weight.shape == (checkpoint.words.trained, DIM)  # trainable rows: the training words only
    assert embed.output_dim == DIM + dim
    table = embed.pretrained_table().detach()
    assert table.shape == (len(itos), dim) and table.dtype == (torch.float16 if freeze else torch.float32)
    row = checkpoint.words.stoi
    assert torch.equal(table[row["apple"]].eq(0).all(), torch.tensor(freeze))  # a word the file lacks starts at zeros
    for word in extras:  # never seen in training: exactly the file's vector either way
        assert torch.equal(table[row[word]].float(), expected[word]), word
    training_words = {w: w for w in used if w not in extras} | {"The": "the"}  # "The" takes "the"'s vector
    for word, source in training_words.items():
        assert torch.equal(table[row[word]].float(), expected[source]) == freeze, word
    header_meta = checkpoint.pretrained
    assert (header_meta.name, header_meta.version, header_meta.vectors, header_meta.dim, header_meta.frozen) == (
        "vecs.txt", None, len(used), dim, freeze
    )
    assert header_meta.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert checkpoint.words.index("cat") == row["cat"] != UNK_ID
    assert len(tag(checkpoint, [["The", "cat", "ate", "the", "fish"]])[0].tags) == 5


@pytest.mark.parametrize(
    "bad_line, message",
    [("dog 0.5 abc" + " 0.5" * (DIM - 2), "value 2 'abc' is not a number"), ("dog 0.5 0.25", f"expected {DIM} values")],
    ids=["not-a-number", "too-few-values"],
)
def test_vectors_unreadable_line_names_file_and_line(tmp_path, bad_line, message):
    path = write_vectors(tmp_path / "vecs.txt", vector_rows(2), header=False)
    lines = path.read_text().splitlines()
    lines[2] = bad_line
    path.write_text("\n".join(lines) + "\n")
    config = features_config(tmp_path, model={"vectors": "vecs.txt"})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")])
    assert_one_line_error(result, f"{path}:3: {message}")


def test_missing_vectors_file_is_a_config_error(tmp_path):
    config = features_config(tmp_path, model={"vectors": "nowhere.vec"})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")])
    assert_one_line_error(result, f"{config}: model.vectors: file not found:", "nowhere.vec")
    assert not (tmp_path / "run").exists()
    result = runner.invoke(app, ["train", str(DEMO), "--output", str(tmp_path / "run"), "--set", "model.vectors=nowhere.vec"])
    assert_one_line_error(result, "model.vectors: file not found:")


def test_bad_vectors_file_leaves_no_run_directory(tmp_path):
    """Like a bad corpus or config, a bad vectors file is found before anything is written, so
    the same command works once the file is fixed (no --force needed, no stray run in runs/)."""
    rows = vector_rows(3)
    path = write_vectors(tmp_path / "vecs.txt", [*rows[:2], rows[2][:-1], *rows[3:]])
    config = features_config(tmp_path, model={"vectors": "vecs.txt"}, train={"epochs": 1})
    command = ["train", str(config), "--output", str(tmp_path / "run"), "--quiet"]
    assert_one_line_error(runner.invoke(app, command), f"{path}:4: expected {DIM} values after the word, found {DIM - 1}")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    write_vectors(path, vector_rows(3))
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output


# 7. Config validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.char_encoder=rnn", "model.char_encoder: must be one of 'none', 'cnn' or 'lstm', got 'rnn'"),
        ("model.output=xyz", "model.output: must be one of 'softmax' or 'crf', got 'xyz'"),
        ("model.char_dim=0", "model.char_dim: must be > 0, got 0"),
        ("model.char_hidden=-3", "model.char_hidden: must be > 0, got -3"),
        ("model.vectors_max_words=0", "model.vectors_max_words: must be > 0, got 0"),
        ("model.freeze_vectors=maybe", "model.freeze_vectors: input should be a valid boolean, got 'maybe'"),
    ],
)
def test_bad_feature_settings_are_one_line(tmp_path, override, message):
    config = features_config(tmp_path)
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--set", override])
    assert_one_line_error(result, f"--set {override}: {message}")  # blamed on the --set, not on the file
    assert not (tmp_path / "run").exists()


# 8. --resume with a character model -------------------------------------------------------------------


def test_resume_char_model_equals_a_straight_run(tmp_path):
    settings = [
        "model.char_encoder=lstm", "model.output=crf", "model.embedding_dim=16", "model.hidden_dim=16",
        "model.char_dim=12", "model.char_hidden=12", "train.patience=0", "train.batch_size=32",
    ]  # demo.yaml keeps dropout 0.2 and word dropout 0.25: both random streams must be restored
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(load_config(DEMO, [*settings, "train.epochs=3"]), straight, progress=False, console=QUIET)
    train(load_config(DEMO, [*settings, "train.epochs=2"]), resumed, progress=False, console=QUIET)
    assert len(without_timings(resumed)) == 2
    result = train(load_config(DEMO, [*settings, "train.epochs=3"]), resumed, resume=True, progress=False, console=QUIET)
    assert result.epochs_run == 3
    assert without_timings(straight) == without_timings(resumed)
    for name in (LAST, BEST):
        a = load_checkpoint(straight / name)
        b = load_checkpoint(resumed / name)
        assert a.chars.itos == b.chars.itos
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys() and any(k.startswith("chars.") for k in sa)
        assert all(torch.allclose(sa[k], sb[k], atol=1e-6, rtol=0) for k in sa), name
    assert "resuming" in (resumed / "train.log").read_text()


def test_character_bilstm_by_length_groups_equals_one_padded_batch():
    from lstm_tagger.model.chars import CharBatch, CharEncoder, length_groups

    torch.manual_seed(0)
    encoder = CharEncoder("lstm", 40, 8, 16, 0.0).eval()
    lengths = torch.tensor([1, 5, 12, 3, 30, 7, 2, 9, 4, 11, 6, 10])
    forms = torch.zeros(len(lengths), 30, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        forms[row, :length] = torch.randint(2, 40, (length,))
    groups = length_groups(lengths)
    assert sorted(torch.cat(groups).tolist()) == list(range(len(lengths)))  # every form once
    assert [lengths[g].max().item() for g in groups] == [3, 6, 10, 30]
    index = torch.tensor([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
    grouped = encoder(CharBatch(index, forms, lengths))
    one_batch = encoder._final_states(encoder.embedding(forms), lengths)[index]
    torch.testing.assert_close(grouped, one_batch, rtol=1e-5, atol=1e-6)


def test_form_cache_encodes_only_new_forms_and_equals_the_encoder():
    from lstm_tagger.model.chars import CharEncoder, FormCache, build_char_vocab

    torch.manual_seed(0)
    chars = build_char_vocab([["abcxyzq"]])
    encoder = CharEncoder("lstm", len(chars), 8, 16, 0.5).eval()
    encoded = []
    real = encoder.encode

    def counting(forms, lengths):
        encoded.append(forms.size(0))
        return real(forms, lengths)

    encoder.encode = counting
    cache = FormCache(encoder, capacity=3)

    def check(sentences, rows_encoded):
        table = FormTable(chars, sentences)
        encoded.clear()
        with torch.inference_mode():
            got = cache.vectors(table)
            assert encoded == rows_encoded
            torch.testing.assert_close(got, real(table.forms, table.lengths), rtol=1e-5, atol=1e-6)

    check([["ab", "abc"], ["ab", "x"]], [1, 3])  # the padding form, then 3 forms
    check([["abc", "ab"]], [])  # both known: nothing encoded
    check([["abc", "yz"]], [1, 2])  # one new form would make 4 > capacity: afresh, the padding form and 2
    check([["yz", "q"], ["abc"]], [1])  # only "q"
    check([[]], [])


def test_streamed_tagging_with_the_form_cache_equals_tagging_one_sentence_at_a_time(chars_crf_run):
    from lstm_tagger.tagging.predict import tag_stream

    _, checkpoint = chars_crf_run
    model = checkpoint.model.eval()
    rng = random.Random(3)
    sentences = [rng.choice(WORDS) + [rng.choice(["swim", "Zyzzyva", "cans", "dog"])] for _ in range(60)]
    streamed = list(tag_stream(checkpoint, sentences, batch_size=2, scores=True, workers=2))  # chunks of 16
    assert [t.words for t in streamed] == sentences
    for words, got in zip(sentences, streamed):
        ids = checkpoint.words.encode(words).unsqueeze(0)
        with torch.inference_mode():
            table = FormTable(checkpoint.chars, [words])
            best, logp = model.predict_columns(ids, torch.tensor([len(words)]), table.batch([0]), scores=True)["upos"]
        assert got.tags == checkpoint.vocabs["upos"].decode(best[0].tolist())
        torch.testing.assert_close(got.probs["upos"], logp[0].exp(), rtol=1e-5, atol=1e-6)
