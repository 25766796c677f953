"""What lstm-tag writes: nothing already there is replaced without --force, a device or a pipe
never, and the temporary files of interrupted writes do not stay forever."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lstm_tagger import load_config, train
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.errors import UserError
from lstm_tagger.files import atomic_writer, atomic_write_bytes, remove_stale_temporaries

from conftest import assert_one_line_error, tiny_config

runner = CliRunner()


def copy_run(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    return target


def test_export_does_not_replace_a_checkpoint_without_force(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    before = (run / BEST).read_bytes()
    result = runner.invoke(app, ["export", str(run), "--format", "torchscript", "--output", str(run / BEST)])
    assert_one_line_error(result, f"{run / BEST}: exists already (use --force to replace it)")
    assert (run / BEST).read_bytes() == before
    result = runner.invoke(app, ["export", str(run), "--format", "torchscript", "--output", str(tmp_path / "m.pt"), "--force"])
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(app, ["export", str(run), "--format", "torchscript", "--output", str(tmp_path / "m.pt"), "--force"])
    assert result.exit_code == 0, result.stderr  # --force replaces a regular file


def test_export_never_replaces_the_checkpoint_it_exports(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    before = (run / BEST).read_bytes()
    for model in (run, run / BEST):
        result = runner.invoke(app, ["export", str(model), "--format", "torchscript", "--output", str(run / BEST), "--force"])
        assert_one_line_error(result, f"{run / BEST}: is the checkpoint being exported; write the export to another file")
    assert (run / BEST).read_bytes() == before


def test_eval_output_does_not_replace_a_training_report_without_force(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")
    before = (run / "report.json").read_bytes()
    assert_one_line_error(runner.invoke(app, ["eval", "--model", str(run), "--output", str(run)]), "report.md: exists already (use --force")
    assert (run / "report.json").read_bytes() == before
    result = runner.invoke(app, ["eval", "--model", str(run), "--output", str(run), "--force", "--json"])
    assert result.exit_code == 0, result.stderr
    assert (run / "report.json").read_bytes() != before


def test_bench_output_is_not_replaced_without_force(tmp_path):
    existing = tmp_path / "bench.json"
    existing.write_text("{}")
    result = runner.invoke(app, ["bench", str(tiny_config(tmp_path)), "--output", str(existing)])
    assert_one_line_error(result, f"{existing}: exists already (use --force to replace it)")
    assert existing.read_text() == "{}"


def test_init_never_replaces_a_device(tmp_path):
    corpus = tiny_config(tmp_path).parent / "tiny.conllu"
    args = ["init", "--train", str(corpus), "--dev", str(corpus)]
    assert_one_line_error(runner.invoke(app, [*args, "--output", "/dev/null", "--force"]), "/dev/null: is a character device; refusing to replace it")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_atomic_writes_refuse_non_regular_targets(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is a pipe \\(FIFO\\); refusing to replace it with a file"):
        atomic_write_bytes(fifo, b"data")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(UserError, match="is a directory; refusing"):
        atomic_write_bytes(tmp_path, b"data")
    assert_one_line_error(
        runner.invoke(app, ["export", str(tmp_path), "--format", "onnx", "--output", str(fifo), "--force"]),
        "is a pipe (FIFO); refusing to replace it",
    )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_files_carry_the_writers_pid(tmp_path):
    target = tmp_path / "model.safetensors"
    with atomic_writer(target) as handle:
        handle.write(b"x")
        (temporary,) = [name for name in os.listdir(tmp_path) if name != target.name]
    assert re.fullmatch(rf"\.model\.safetensors\.{os.getpid()}\.[a-z0-9_]+\.tmp", temporary)
    assert os.listdir(tmp_path) == [target.name]


def test_stale_temporaries_of_dead_writers_are_removed_when_the_run_is_next_used(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / f".model-last.safetensors.{dead_pid()}.k2j4h5g6.tmp"
    live = out / f".model-last.safetensors.{os.getpid()}.a1b2c3d4.tmp"  # a writer still at work
    other = out / "notes.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    train(load_config(tiny_config(tmp_path, train={"epochs": 1})), out, force=True, progress=False)
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(out) == []


def test_interrupted_download_leftovers_are_removed_on_the_next_download(tmp_path, monkeypatch):
    from lstm_tagger.corpus import download

    folder = tmp_path / "data" / "ud_english_ewt"
    folder.mkdir(parents=True)
    stale = folder / f".en_ewt-ud-train.conllu.{dead_pid()}.zz99yy88.tmp"
    stale.write_bytes(b"half a treebank")

    def offline(file, target, expected, progress, timeout):
        raise download.DownloadError("offline")

    listed = [download.RemoteFile("en_ewt-ud-train.conllu", "http://127.0.0.1:9/never-fetched", 1, "0" * 40)]
    monkeypatch.setattr(download, "list_release", lambda *args: listed)  # no network: the file list is given
    monkeypatch.setattr(download, "_fetch", offline)
    with pytest.raises(download.DownloadError):
        download.download_treebank("ud_english_ewt", tmp_path / "data", progress=False)
    assert not stale.exists()


# --- nothing the user gave is overwritten, --force or not ------------------------------------------


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_init_refuses_to_write_its_config_over_one_of_its_corpus_files(tmp_path, link, force):
    corpus = tiny_config(tmp_path).parent / "tiny.conllu"
    mine = tmp_path / "my.conllu"
    mine.write_bytes(corpus.read_bytes())
    output = {"same": mine, "symlink": tmp_path / "link.yaml", "hardlink": tmp_path / "hard.yaml"}[link]
    if link == "symlink":
        output.symlink_to(mine)
    elif link == "hardlink":
        os.link(mine, output)
    result = runner.invoke(app, ["init", "--train", str(mine), "--dev", str(corpus), "--output", str(output), *force])
    assert result.exit_code == 2 and result.stderr == f"lstm-tag: error: {output}: is the train file {mine}; the config must go to another file\n"
    assert mine.read_bytes() == corpus.read_bytes()
    result = runner.invoke(app, ["init", "--train", str(corpus), "--dev", str(mine), "--output", str(output), *force])
    assert result.stderr == f"lstm-tag: error: {output}: is the dev file {mine}; the config must go to another file\n"
    assert mine.read_bytes() == corpus.read_bytes()


def test_train_force_never_writes_over_the_config_it_reads(tmp_path):
    (tmp_path / "c").mkdir()
    config = tiny_config(tmp_path / "c", train={"epochs": 1})
    mine = config.parent / "config.yaml"
    mine.write_text("# my commented config\n" + config.read_text())
    before = sorted(p.name for p in config.parent.iterdir())
    result = runner.invoke(app, ["train", str(mine), "--output", str(config.parent), "--force"])
    assert result.exit_code == 2 and result.stderr == (
        f"lstm-tag: error: {mine}: the config would be overwritten by the run's config.yaml in --output {config.parent}: "
        "give another --output (or move the file out of it)\n"
    )
    assert mine.read_text().startswith("# my commented config\n") and sorted(p.name for p in config.parent.iterdir()) == before


@pytest.mark.parametrize("key, name", [("train", "train.log"), ("dev", "report.md"), ("test", BEST)])
def test_train_force_never_writes_over_a_data_file(tmp_path, key, name):
    config = tiny_config(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    data = run / name
    data.write_bytes((tmp_path / "tiny.conllu").read_bytes())
    config.write_text(config.read_text().replace(f"{key}: tiny.conllu", f"{key}: run/{name}"))
    result = runner.invoke(app, ["train", str(config), "--output", str(run), "--force"])
    assert_one_line_error(result, f"{data}: data.{key} would be overwritten by the run's {name} in --output {run}: give another --output")
    assert data.read_bytes() == (tmp_path / "tiny.conllu").read_bytes() and sorted(run.iterdir()) == [data]


def test_train_force_never_writes_over_its_teacher(tiny_run, tmp_path):
    teacher = copy_run(tiny_run, tmp_path / "teacher")
    best = (teacher / BEST).read_bytes()
    config = tiny_config(tmp_path, train={"teacher": str(teacher)})
    result = runner.invoke(app, ["train", str(config), "--output", str(teacher), "--force"])
    assert_one_line_error(result, f"{teacher}: train.teacher is the run directory --output {teacher}, whose {BEST} training would replace")
    config = tiny_config(tmp_path, train={"teacher": str(teacher / BEST)})
    result = runner.invoke(app, ["train", str(config), "--output", str(teacher), "--force"])
    assert_one_line_error(result, f"{teacher / BEST}: train.teacher would be overwritten by the run's {BEST} in --output {teacher}")
    assert (teacher / BEST).read_bytes() == best


def test_resume_may_read_the_runs_own_config(tiny_run, tmp_path):
    """The config.yaml of a run is the run's own (resolved) file: --resume from it is allowed."""
    run = copy_run(tiny_run, tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    result = runner.invoke(app, ["train", str(run / "config.yaml"), "--output", str(run), "--resume", "--quiet",
                                 "--set", f"train.epochs={len((run / 'metrics.jsonl').read_text().splitlines()) + 1}"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == config["data"]


def test_bench_refuses_an_unwritable_output_folder_before_the_work(tmp_path):
    folder = Path("/sys")  # sysfs: no new file, even for root (chmod does not stop root)
    if not folder.is_dir() or _can_create(folder):
        pytest.skip("no folder here that refuses a new file (Linux's /sys)")
    run = tmp_path / "run"
    result = runner.invoke(app, ["bench", str(tiny_config(tmp_path)), "--output", str(folder / "bench.json"), "--run-dir", str(run)])
    assert_one_line_error(result, f"{folder}: cannot write: ")
    assert not run.exists()  # no training started


def test_bench_refuses_a_read_only_output_folder_before_the_work(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _can_create(folder):
            pytest.skip("running as root: a read-only folder still takes files")
        run = tmp_path / "run"
        result = runner.invoke(app, ["bench", str(tiny_config(tmp_path)), "--output", str(folder / "b.json"), "--run-dir", str(run)])
        assert_one_line_error(result, f"{folder}: cannot write: Permission denied")
        assert not run.exists()
    finally:
        folder.chmod(0o755)


def _can_create(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True
