"""lstm-tag runs and lstm-tag info."""

import io
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from lstm_tagger.cli import app
from rich.console import Console

from lstm_tagger.rundir import BEST
from lstm_tagger.runs import corpus_names, info_table, crf_cell, list_runs, output_cell, recipe, runs_table

from conftest import ROOT, assert_one_line_error, rewrite_header, tiny_config

runner = CliRunner()


def test_runs_lists_each_run_and_info_shows_a_checkpoint(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, train={"epochs": 3})
    runs = tmp_path / "runs"
    assert runner.invoke(app, ["train", str(config), "--output", str(runs / "a")]).exit_code == 0
    assert runner.invoke(app, ["train", str(config), "--output", str(runs / "b"), "--set", "model.cell=gru", "--set", "data.test=null"]).exit_code == 0
    (runs / "starting").mkdir()
    (runs / "starting" / "config.yaml").write_text("data: {train: x.conllu}\n")  # a run still in its first epoch

    records = json.loads(runner.invoke(app, ["runs", "--runs-dir", str(runs), "--json"]).stdout)
    by_name = {r["name"]: r for r in records}
    assert set(by_name) == {"a", "b", "starting"}
    a_metrics = [json.loads(line) for line in (runs / "a" / "metrics.jsonl").read_text().splitlines()]
    assert by_name["a"]["epochs"] == 3 and by_name["a"]["best_dev_accuracy"] == max(r["dev_accuracy"] for r in a_metrics)
    report = json.loads((runs / "a" / "report.json").read_text())
    assert by_name["a"]["test_accuracy"] == report["results"]["test"]["accuracy"]
    assert by_name["b"]["recipe"]["cell"] == "gru" and by_name["b"]["test_accuracy"] is None
    assert by_name["starting"]["epochs"] == 0 and by_name["starting"]["best_dev_accuracy"] is None
    table = runner.invoke(app, ["runs", "--runs-dir", str(runs)])
    assert table.exit_code == 0 and _rows(table.stdout)["starting"] == {
        "name": "starting", "corpus": "x", "tags": "upos", "chars": "none", "crf": "none", "cell": "lstm",
        "ep": "0", "dev": "-", "test": "-"}

    info = json.loads(runner.invoke(app, ["info", str(runs / "b"), "--json"]).stdout)
    assert info["model"]["cell"] == "gru" and info["tags"] == ["DET", "NOUN", "VERB", "PRON"]  # most frequent first
    assert info["words"] == 2 + 9 and info["metrics"]["epoch"] >= 1  # <pad>, <unk> and 9 distinct forms
    assert info["parameters"] > 0 and info["data"]["train"].endswith("tiny.conllu")
    monkeypatch.chdir(tmp_path)
    shown = runner.invoke(app, ["info"])
    assert shown.exit_code == 0 and "model.hidden_dim" in shown.stdout


DEMO = ("demo", "train.epochs=2", "tokenizer.mode=off")  # the runs test_export trains too
RECIPES = {  # each differs from the demo recipe in one thing
    "base": [],
    "chars": ["model.char_encoder=cnn"],
    "crf": ["model.output=crf"],
    "xpos": ["data.columns=[upos,xpos]"],
}


def _rows(table: str) -> dict[str, dict[str, str]]:
    """``lstm-tag runs``'s table (no cell with a space in it) as {name: {header: cell}}."""
    lines = table.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("name "))
    header = lines[at].split()
    end = next(i for i, line in enumerate(lines) if line.startswith("ep: "))  # the caption, perhaps over several lines
    rows = (line.split() for line in lines[at + 1 : end])
    return {cells[0]: dict(zip(header, cells)) for cells in rows if cells}


def test_runs_show_the_recipe_of_each_run(trained_run, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for name, overrides in RECIPES.items():
        shutil.copytree(trained_run(*DEMO, *overrides), runs / name)
    records = {r["name"]: r for r in json.loads(runner.invoke(app, ["runs", "--runs-dir", str(runs), "--json"]).stdout)}
    base = {"columns": ["upos"], "chars": "none", "output": {"upos": "softmax"}, "cell": "lstm"}
    assert records["base"]["recipe"] == base
    assert records["chars"]["recipe"] == {**base, "chars": "cnn"}
    assert records["crf"]["recipe"] == {**base, "output": {"upos": "crf"}}
    assert records["xpos"]["recipe"] == {**base, "columns": ["upos", "xpos"], "output": {"upos": "softmax", "xpos": "softmax"}}
    assert {r["train"] for r in records.values()} == {str(ROOT / "data" / "demo" / "train.conllu")}  # the full path
    assert {r["format"] for r in records.values()} == {"conllu"}

    monkeypatch.chdir(ROOT)
    rows = _rows(runner.invoke(app, ["runs", "--runs-dir", str(runs)]).stdout)
    recipes = {name: (row["tags"], row["chars"], row["crf"], row["cell"]) for name, row in rows.items()}
    assert recipes == {
        "base": ("upos", "none", "none", "lstm"),
        "chars": ("upos", "cnn", "none", "lstm"),
        "crf": ("upos", "none", "all", "lstm"),
        "xpos": ("upos+xpos", "none", "none", "lstm"),
    }
    assert {row["corpus"] for row in rows.values()} == {"train"}  # the file, the only one of its name


def test_info_shows_the_data_format_and_columns(trained_run):
    run = trained_run(*DEMO, *RECIPES["xpos"])
    info = json.loads(runner.invoke(app, ["info", str(run), "--json"]).stdout)
    assert info["recipe"] == {"columns": ["upos", "xpos"], "chars": "none", "output": {"upos": "softmax", "xpos": "softmax"}, "cell": "lstm"}
    assert info["data"]["format"] == "conllu" and info["data"]["columns"] == ["upos", "xpos"]
    assert info["data"]["train"] == str(ROOT / "data" / "demo" / "train.conllu")
    rows = _info_rows(runner.invoke(app, ["info", str(run)]).stdout)
    assert rows["data.format"] == "conllu" and rows["data.columns"] == "['upos', 'xpos']"
    assert rows["recipe"] == "upos+xpos, chars none, output softmax, cell lstm"
    assert rows["data.unk_shapes"] == "True" and rows["data.dev"] == str(ROOT / "data" / "demo" / "dev.conllu")


def test_info_says_when_a_model_has_no_segmenter(tiny_run):
    info = json.loads(runner.invoke(app, ["info", str(tiny_run), "--json"]).stdout)
    assert "tokenizer" in info and info["tokenizer"] is None
    rows = _info_rows(runner.invoke(app, ["info", str(tiny_run)], env={"COLUMNS": "200"}).stdout)
    assert rows["segmenter"] == "none: the model tags tokens (predict --input-format tokens or conllu), not raw text"
    assert not any(key.startswith("tokenizer.") for key in rows)


def _info_rows(table: str) -> dict[str, str]:
    """``lstm-tag info``'s table as {key: value}, a value folded over several lines joined again
    (a path has no spaces: the fold is the only break)."""
    rows: dict[str, str] = {}
    key = None
    for line in table.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.split("│")[1:3]]
            key = cells[0] or key
            rows[key] = rows.get(key, "") + cells[1]
    return rows


def _long_path(tmp_path: Path, length: int = 150) -> str:
    """An absolute path of ``length`` characters (more if ``tmp_path`` is longer), without spaces."""
    head = f"{tmp_path}/"
    return head + "d" * max(1, length - len(head) - len("/train.conllu")) + "/train.conllu"


def _with_data_path(run: Path, target: Path, path: str) -> Path:
    def edit(header):
        config = json.loads(header["__metadata__"]["config"])
        config["data"]["train"] = path
        header["__metadata__"]["config"] = json.dumps(config)

    return rewrite_header(run / BEST, target, edit)


def test_info_shows_a_long_path_whole_at_any_width(tiny_run, tmp_path):
    path = _long_path(tmp_path)
    checkpoint = _with_data_path(tiny_run, tmp_path / "long.safetensors", path)
    shown = runner.invoke(app, ["info", str(checkpoint)], env={"COLUMNS": "60"})
    assert shown.exit_code == 0 and "…" not in shown.stdout
    assert _info_rows(shown.stdout)["data.train"] == path
    narrow = Console(width=60, file=io.StringIO())
    narrow.print(info_table(json.loads(runner.invoke(app, ["info", str(checkpoint), "--json"]).stdout)))
    text = narrow.file.getvalue()
    assert "…" not in text and _info_rows(text)["data.train"] == path
    assert max(len(line) for line in text.splitlines()) <= 60


def test_runs_fold_a_long_name_rather_than_cut_it(tiny_run, tmp_path):
    runs = tmp_path / "runs"
    name = "run-" + "n" * 96
    shutil.copytree(tiny_run, runs / name)
    narrow = Console(width=60, file=io.StringIO())
    narrow.print(runs_table(list_runs(runs), runs))
    text = narrow.file.getvalue()  # (the corpus column names the file by design: corpus_names)
    assert max(len(line) for line in text.splitlines()) <= 60
    lines = text.splitlines()
    rows = lines[next(i for i, line in enumerate(lines) if line.startswith("name ")) + 1 :]
    rows = rows[: next(i for i, line in enumerate(rows) if line.startswith("ep: "))]  # the caption
    assert "".join(line.split()[0] for line in rows if line.strip() and not line.startswith(" ")) == name


def test_recipe_names_each_columns_output_layer():
    config = {"data": {"columns": ["upos", "xpos", "feats"]}, "model": {"output": "crf", "output_per_column": {"feats": "softmax"}}}
    assert recipe(config) == {
        "columns": ["upos", "xpos", "feats"], "chars": "none", "output": {"upos": "crf", "xpos": "crf", "feats": "softmax"}, "cell": "lstm",
    }
    assert output_cell(recipe(config)["output"]) == "crf (feats softmax)"
    assert output_cell({"upos": "softmax", "xpos": "crf"}) == "softmax (xpos crf)"  # a tie: the first column's
    assert crf_cell(recipe(config)["output"]) == "upos+xpos" and crf_cell({"upos": "crf", "xpos": "crf"}) == "all"
    assert crf_cell({"upos": "softmax"}) == "none"
    assert recipe({"data": {"train": "x.conllu"}}) == {"columns": ["upos"], "chars": "none", "output": {"upos": "softmax"}, "cell": "lstm"}


def test_runs_tell_corpora_with_the_same_file_name_apart(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for folder in ("en", "fr"):
        (tmp_path / folder).mkdir()
        config = tiny_config(tmp_path / folder)
        assert runner.invoke(app, ["train", str(config), "--output", str(runs / folder), "--set", "train.epochs=1", "--quiet"]).exit_code == 0
    monkeypatch.chdir(tmp_path)
    rows = _rows(runner.invoke(app, ["runs", "--runs-dir", "runs"]).stdout)
    assert {name: row["corpus"] for name, row in rows.items()} == {"en": "en/tiny", "fr": "fr/tiny"}
    records = json.loads(runner.invoke(app, ["runs", "--runs-dir", "runs", "--json"]).stdout)
    assert [r["train"] for r in records] == [str(tmp_path / "en" / "tiny.conllu"), str(tmp_path / "fr" / "tiny.conllu")]


def test_corpus_names_keep_what_tells_them_apart():
    paths = [
        "/work/project/data/demo/train.conllu",  # the only one named demo/train
        "/srv/corpora/2024/french/ud/data/train.conllu",  # these two differ far from the end
        "/srv/corpora/2025/french/ud/data/train.conllu",
        "/srv/corpora/treebanks/ud_english_ewt/en_ewt-ud-train.conllu",  # the only one of its name
        "corpora/welsh/train.tsv",
    ]
    assert corpus_names(paths) == {
        paths[0]: "demo/train", paths[1]: "2024/french/ud/data/train", paths[2]: "2025/french/ud/data/train",
        paths[3]: "en_ewt-ud-train", paths[4]: "welsh/train",
    }
    assert corpus_names(["/home/ana/ud/af/train.conllu", "/home/ana/ud/af/train.conllu"]) == {"/home/ana/ud/af/train.conllu": "train"}
    assert corpus_names(["/data/notes.txt"]) == {"/data/notes.txt": "notes.txt"}  # only a corpus format's ending goes
    assert corpus_names(["/c/train.conllu", "/c/train.tsv"]) == {"/c/train.conllu": "train.conllu", "/c/train.tsv": "train.tsv"}


TYPICAL = [  # what runs of the shipped recipes and of init's configs look like
    ("ud_ewt-20261122-101500", "/work/shared/data/ud_english_ewt/en_ewt-ud-train.conllu", ["upos", "xpos", "feats"],
     {"upos": "crf", "xpos": "crf", "feats": "softmax"}, "lstm", "lstm"),
    ("my-tagger-20261123-091000", "/home/ana/corpora/ud_vietnamese_vtb/vi_vtb-ud-train.conllu", ["upos", "xpos"],
     {"upos": "crf", "xpos": "crf"}, "lstm", "lstm"),
    ("ud_ewt_tutorial-20261124-170000", "/work/shared/data/ud_english_ewt/en_ewt-ud-train.conllu", ["upos"],
     {"upos": "softmax"}, "cnn", "gru"),
    ("demo-20261122-101500", "/work/project/data/demo/train.conllu", ["upos"], {"upos": "softmax"}, "none", "lstm"),
]


def test_runs_fit_100_columns_one_line_a_run():
    records = [
        {"name": name, "path": f"runs/{name}", "date": "2026-11-22 10:15", "train": train, "format": "conllu",
         "recipe": {"columns": columns, "chars": chars, "output": output, "cell": cell}, "epochs": 30,
         "best_dev_accuracy": 0.9712, "test_accuracy": 0.9655, "test_columns": {}, "has_model": True, "damaged": None}
        for name, train, columns, output, chars, cell in TYPICAL
    ]
    console = Console(width=100, file=io.StringIO())
    console.print(runs_table(records, "runs"))
    lines = console.file.getvalue().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 100
    assert len(lines) == 3 + len(TYPICAL)  # the title, the header, one line per run and the caption: nothing folds
    assert lines[-1].rstrip() == "ep: epochs; dev (best), test: accuracy % of the first tag column"
    assert _rows(console.file.getvalue())["ud_ewt-20261122-101500"] == {
        "name": "ud_ewt-20261122-101500", "corpus": "en_ewt-ud-train", "tags": "upos+xpos+feats", "chars": "lstm",
        "crf": "upos+xpos", "cell": "lstm", "ep": "30", "dev": "97.12", "test": "96.55"}
    assert _rows(console.file.getvalue())["demo-20261122-101500"]["corpus"] == "train"


def test_info_and_runs_on_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(app, ["info", str(tmp_path / "nope")])
    assert_one_line_error(missing, "nope: checkpoint not found")
    empty = runner.invoke(app, ["runs"])
    assert empty.exit_code == 0 and "no runs under runs/" in empty.stderr
    assert runner.invoke(app, ["runs", "--json"]).stdout.strip() == "[]"


def test_quiet_prints_nothing_and_train_log_keeps_the_epochs(tmp_path):
    config = tiny_config(tmp_path, train={"epochs": 2})
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    log = (tmp_path / "run" / "train.log").read_text().splitlines()
    assert [line.split()[1:3] for line in log if " epoch " in line] == [["epoch", "1"], ["epoch", "2"]]
    assert log[-1].endswith(f"run written to {tmp_path / 'run'}")
    loud = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "loud")])
    assert "epoch   2" in loud.stdout and "\x1b[" not in loud.stdout  # not a terminal: no colour codes


def test_init_writes_a_config_that_trains(tmp_path, monkeypatch):
    corpus = tmp_path / "my data #1"
    corpus.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (corpus / name).write_text("The\tDET\ndog\tNOUN\nbarks\tVERB\n\nA\tDET\ncat\tNOUN\nsleeps\tVERB\n")
    out = tmp_path / "configs" / "mine.yaml"
    args = ["init", "--train", str(corpus / "train.tsv"), "--dev", str(corpus / "dev.tsv"), "--format", "tsv", "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and f"wrote {out}" in result.stdout
    assert '"../my data #1/train.tsv"' in out.read_text()  # relative to the config, quoted
    again = runner.invoke(app, args)
    assert_one_line_error(again, "exists already (use --force")
    trained = runner.invoke(app, ["train", str(out), "--output", str(tmp_path / "run"), "--set", "train.epochs=2"])
    assert trained.exit_code == 0, trained.output
    missing = runner.invoke(app, ["init", "--output", str(tmp_path / "x.yaml")])
    assert_one_line_error(missing, "give --train FILE and --dev FILE")
    monkeypatch.setattr("lstm_tagger.cli.train.interactive", lambda: True)
    asked = runner.invoke(app, ["init", "--format", "tsv", "--output", str(tmp_path / "asked.yaml")],
                          input=f"{corpus / 'train.tsv'}\n{corpus / 'dev.tsv'}\n\n")
    assert asked.exit_code == 0, asked.output
    text = (tmp_path / "asked.yaml").read_text()
    assert '"my data #1/dev.tsv"' in text and "test: null" in text
