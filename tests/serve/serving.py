"""The server's fixtures: the demo model loaded once, and an application on it with its batchers running.

Imported by the test modules (``from serving import client``), not a ``conftest.py``: a second
``conftest`` module would shadow ``tests/conftest.py`` for the modules that import from it."""

from __future__ import annotations


import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx: pip install -e '.[test]'")

import lstm_tagger  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from lstm_tagger.serve.app import create_app  # noqa: E402


@pytest.fixture(scope="session")
def demo_tagger(demo_run) -> lstm_tagger.Pipeline:
    return lstm_tagger.load(demo_run)


@pytest.fixture(scope="module")
def client(demo_tagger, tiny_run) -> TestClient:
    """An application serving the demo model (the default, ``demo``) and the tiny one (``tiny``, no segmenter)."""
    app = create_app({"demo": demo_tagger, "tiny": lstm_tagger.load(tiny_run)})
    with TestClient(app) as test_client:
        yield test_client
