"""memory.fix_mmap_threshold and cap_arenas: set on glibc, left alone when the user set glibc's own variable."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from lstm_tagger.memory import cap_arenas, fix_mmap_threshold


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
