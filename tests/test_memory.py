"""memory.fix_mmap_threshold and cap_arenas: set on glibc, left alone when the user set glibc's own variable;
``lstm-tag train`` preloads tcmalloc where it is installed."""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys

import pytest

from lstm_tagger.memory import cap_arenas, find_tcmalloc, fix_mmap_threshold, preload_environment

from conftest import ROOT


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_fixed_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert ctypes.util.find_library("c")
    assert fix_mmap_threshold() is True
    assert cap_arenas(8) is True  # 8: the test process keeps plenty


def test_user_setting_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert fix_mmap_threshold() is False
    assert cap_arenas() is False


LIB = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


@pytest.mark.parametrize("command, environ, found, preloaded", [
    ("train", {}, LIB, True),
    ("predict", {}, LIB, False),  # training only: it allocates batch after batch of changing shapes
    ("train", {}, None, False),  # not installed: glibc's malloc, the mmap threshold fixed
    ("train", {"LSTM_TAG_ALLOCATOR": "system"}, LIB, False),  # the user's choice
    ("train", {"LSTM_TAG_ALLOCATOR": "tcmalloc"}, LIB, False),  # the process already re-executed
    ("train", {"LD_PRELOAD": "/opt/mine.so"}, LIB, False),  # the user preloads something: left alone
])
def test_train_preloads_tcmalloc_only_where_asked_for_nothing_else(command, environ, found, preloaded):
    environment = preload_environment(command, {"PATH": "/bin", **environ}, found)
    if not preloaded or os.name != "posix":
        assert environment is None
    else:
        assert environment == {"PATH": "/bin", "LD_PRELOAD": LIB, "LSTM_TAG_ALLOCATOR": "tcmalloc"}


@pytest.mark.skipif(find_tcmalloc() is None, reason="tcmalloc is not installed (apt install libtcmalloc-minimal4)")
def test_lstm_tag_train_runs_on_tcmalloc_and_says_so(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "LSTM_TAG_ALLOCATOR")}
    command = [sys.executable, "-m", "lstm_tagger", "train", str(ROOT / "configs" / "demo.yaml"), "--set", "train.epochs=1",
               "--set", "tokenizer.mode=off", "--output", str(tmp_path / "run"), "--quiet"]
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "run" / "train.log").read_text()
    assert "malloc: tcmalloc, preloaded (LSTM_TAG_ALLOCATOR=system keeps the C library's)" in log
    system = subprocess.run([*command[:-3], "--output", str(tmp_path / "plain"), "--quiet"], env={**environ, "LSTM_TAG_ALLOCATOR": "system"},
                            capture_output=True, text=True, timeout=300)
    assert system.returncode == 0, system.stderr
    assert "malloc:" not in (tmp_path / "plain" / "train.log").read_text()
