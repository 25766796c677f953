"""The server's API in process (FastAPI's TestClient): ``/tag`` and UDPipe's ``/process`` answer with
``lstm-tag predict``'s bytes for the same input; every bad request gets a 4xx and one line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving import client, demo_tagger  # noqa: F401 -- fixtures (skips without the serve extra)

import httpx  # noqa: E402
import lstm_tagger  # noqa: E402
from conftest import assert_one_line_error  # noqa: E402
from lstm_tagger.cli import app as cli_app  # noqa: E402
from lstm_tagger.serve.app import create_app  # noqa: E402

runner = CliRunner()
TEXT = "Don't stop. The dog ate the apple\n\nEverybody read that book. We can't stop now!"
CONLLU = (
    "\ufeff# newdoc id = d1\r\n# sent_id = a\r\n# text = Don't stop\r\n"
    "1-2\tDon't\t_\t_\t_\t_\t_\t_\t_\t_\r\n1\tDo\tdo\tX\tY\t_\t0\troot\t_\t_\r\n2\tn't\tnot\t_\t_\t_\t1\tadvmod\t_\tKeep=1\r\n"
    "3\tstop\t_\t_\t_\t_\t1\tdep\t_\tSpaceAfter=No\r\n\r\n# sent_id = b\n1\tThe\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "2\tdog\t_\t_\t_\t_\t_\t_\t_\t_\n\n# a comment at the end\n"
)


def predict(run: Path, *args: str) -> bytes:
    result = runner.invoke(cli_app, ["predict", "--model", str(run), *args])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


def json_lines(output: bytes) -> list[dict]:
    return [json.loads(line) for line in output.decode("utf-8").splitlines() if line]


@pytest.mark.parametrize("scores", [False, True])
def test_tag_text_is_predicts_bytes(client, demo_run, scores):
    flags = ["--scores"] if scores else []
    for format in ("conllu", "text"):
        answer = client.post("/tag", json={"text": TEXT, "format": format, "scores": scores})
        assert answer.status_code == 200 and answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert answer.content == predict(demo_run, TEXT, "--format", format, *flags), format
    answer = client.post("/tag", json={"text": TEXT, "scores": scores})
    assert answer.json() == {"model": "demo", "sentences": json_lines(predict(demo_run, TEXT, "--format", "json", *flags))}


def test_tag_tokens_and_conllu_are_predicts_bytes(client, demo_run, tmp_path):
    tokens = [["The", "dog", "ate", "the", "apple"], ["Everybody", "read", "that", "book"]]
    lines = "\n".join(" ".join(words) for words in tokens)
    for format in ("conllu", "text"):
        answer = client.post("/tag", json={"tokens": tokens, "format": format})
        assert answer.content == predict(demo_run, lines, "--input-format", "tokens", "--format", format)
    (tmp_path / "in.conllu").write_bytes(CONLLU.encode("utf-8"))
    answer = client.post("/tag", json={"conllu": CONLLU, "format": "conllu"})
    assert answer.content == predict(demo_run, "--file", str(tmp_path / "in.conllu"), "--format", "conllu")
    answer = client.post("/tag", json={"conllu": CONLLU, "model": "demo"})
    assert answer.json()["sentences"] == json_lines(predict(demo_run, "--file", str(tmp_path / "in.conllu"), "--format", "json"))


def test_tag_picks_the_model_by_name(client, tiny_run):
    answer = client.post("/tag", json={"tokens": [["The", "dog"]], "model": "tiny", "format": "conllu"})
    assert answer.content == predict(tiny_run, "The dog", "--input-format", "tokens", "--format", "conllu")
    assert client.post("/tag", json={"tokens": [["The", "dog"]], "model": "tiny"}).json()["model"] == "tiny"


def test_process_is_udpipes_api(client, demo_run):
    """What ``curl -F data="Don't stop." -F tokenizer= -F tagger= .../process`` sends: multipart form data."""
    answer = client.post("/process", files={"data": (None, "Don't stop."), "tokenizer": (None, ""), "tagger": (None, "")})
    assert answer.status_code == 200
    assert answer.json() == {
        "model": "demo", "acknowledgements": [f"lstm-tag {lstm_tagger.__version__}"],
        "result": predict(demo_run, "Don't stop.", "--format", "conllu").decode("utf-8"),
    }
    words = [line.split("\t")[1] for line in answer.json()["result"].splitlines() if line[:1].isdigit()]
    assert words == ["Don't", "Do", "n't", "stop", "."]

def test_process_reads_every_udpipe_input_and_output(client, demo_run):
    conllu = predict(demo_run, "The dog ate the apple", "--input-format", "tokens", "--format", "conllu").decode("utf-8")
    as_form = client.post("/process", data={"data": "The dog ate the apple", "input": "horizontal", "model": "de"})
    assert as_form.json()["result"] == conllu and as_form.json()["model"] == "demo"  # a model's name starts with "de"
    vertical = client.post("/process", data={"data": "The\ndog\nate\nthe\napple\n\n", "input": "vertical"})
    assert vertical.json()["result"] == conllu
    as_query = client.get("/process", params={"data": "The dog ate the apple", "input": "horizontal", "output": "vertical"})
    assert as_query.json()["result"] == "The\ndog\nate\nthe\napple\n\n"
    as_file = client.post("/process", files={"data": ("in.conllu", CONLLU.encode("utf-8"))})
    assert as_file.json()["result"] == client.post("/tag", json={"conllu": CONLLU, "format": "conllu"}).text
    horizontal = client.post("/process", data={"data": "Don't stop. The dog", "tokenizer": "", "output": "horizontal"})
    assert horizontal.json()["result"] == "Do n't stop .\nThe dog\n"


def test_models_and_health(client, demo_run, tiny_run):
    assert client.get("/models").json() == {"models": {"demo": ["tokenizer", "tagger"], "tiny": ["tokenizer", "tagger"]}, "default_model": "demo"}
    assert client.post("/models").json() == client.get("/models").json()
    health = client.get("/health").json()
    assert health["status"] == "ok" and list(health["models"]) == ["demo", "tiny"]
    assert health["models"]["tiny"] == {"path": str(tiny_run / "model-best.safetensors"), "columns": ["upos"], "segmenter": False}


def test_openapi_describes_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/tag", "/process", "/models", "/health"}
    schema = paths["/tag"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"text", "tokens", "conllu", "model", "format", "scores"}


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js" defer></script>' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    for name in ("/", "/static/app.js", "/static/style.css"):
        assert "http" not in client.get(name).text  # nothing fetched from elsewhere: the page works offline


BAD_TAG = [
    (b'{"text": "\xff"}', 400, "the request body is not UTF-8 (byte 11)"),
    (b'{"text": ', 400, "the request body is not JSON: Expecting value (line 1, column 10)"),
    (b'["The dog"]', 400, 'the request body is a JSON object, not list: e.g. {"text": "The dog barks."}'),
    (b'{"tokens": "The dog"}', 400, "tokens: Input should be a valid list"),
    (b'{"tokens": [["The", 3]]}', 400, "tokens.0.1: Input should be a valid string"),
    (b'{"text": "x", "scores": "yes"}', 400, "scores: Input should be a valid boolean"),
    (b'{"text": "x", "format": "xml"}', 400, "format: Input should be 'json', 'conllu' or 'text'"),
    (b'{"text": "x", "txt": "x"}', 400, "txt: Extra inputs are not permitted"),
    (b'{"txt": "x", "tokens": 1}', 400, "tokens: Input should be a valid list (and 1 more)"),
    (b'{"text": "x", "tokens": [["x"]]}', 400, "give exactly one of text, tokens or conllu: got text and tokens"),
    (b'{}', 400, "give exactly one of text, tokens or conllu: got none"),
    (b'{"text": "x\\ud800"}', 400, "the request body escapes a lone surrogate ('\\ud800'), which is not a character"),
    (b'{"tokens": [["New York"]]}', 400, "tokens.0.0: a word is not empty and holds no whitespace, got 'New York'"),
    (b'{"tokens": [["a", ""]]}', 400, "tokens.0.1: a word is not empty and holds no whitespace, got ''"),
    (b'{"text": "x", "model": "fr"}', 400, "model 'fr' is not served here: the models are 'demo', 'tiny'"),
    (b'{"conllu": "1\\tThe\\n"}', 400, "conllu:1: expected 10 tab-separated columns, found 2"),
]


@pytest.mark.parametrize("body, status, message", BAD_TAG, ids=[message[:40] for _, _, message in BAD_TAG])
def test_a_bad_tag_request_gets_one_clear_line(client, body, status, message):
    answer = client.post("/tag", content=body, headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()) == (status, {"error": message})


BAD_PROCESS = [
    ({"data": "x", "parser": ""}, "lstm-tag has no parser: leave out the parser field (it tags UPOS, XPOS and FEATS, not HEAD and DEPREL)"),
    ({"tokenizer": ""}, "the field data is missing: give the text to process (curl -F data=@file.txt ...)"),
    ({"data": "x", "output": "epe"}, "output='epe': lstm-tag writes conllu, horizontal, vertical"),
    ({"data": "x", "input": "generic_tokenizer"}, "input='generic_tokenizer': lstm-tag reads conllu, horizontal, vertical, or raw text with the tokenizer field"),
    ({"data": "x y\n", "input": "vertical"}, "data:1: a vertical line holds one token, without spaces: 'x y'"),
    ({"data": "1\tx\n"}, "data:1: expected 10 tab-separated columns, found 2"),
    ({"data": "x", "model": "english"}, "model 'english' is not served here: the models are 'demo', 'tiny'"),
]


@pytest.mark.parametrize("fields, message", BAD_PROCESS, ids=[message[:40] for _, message in BAD_PROCESS])
def test_a_bad_process_request_gets_udpipes_plain_error(client, fields, message):
    answer = client.post("/process", data=fields)
    assert (answer.status_code, answer.headers["content-type"], answer.text) == (400, "text/plain; charset=utf-8", message + "\n")


def test_bytes_that_are_not_utf8_in_a_form_are_refused(client):
    answer = client.post("/process", files={"data": ("in.txt", b"The \xff dog")})
    assert (answer.status_code, answer.text) == (400, "form field 'data' is not UTF-8 (byte 5)\n")
    answer = client.post("/process", content=b"data=%FF", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (answer.status_code, answer.text) == (400, "a form field is not UTF-8 (or not URL-encoded)\n")
    answer = client.post("/process", content=b"data", headers={"Content-Type": "application/json"})
    assert answer.status_code == 415


def test_an_unknown_path_or_method_is_one_json_line(client):
    assert (client.get("/nope").status_code, client.get("/nope").json()) == (404, {"error": "Not Found"})
    assert (client.get("/tag").status_code, client.get("/tag").json()) == (405, {"error": "Method Not Allowed"})


def test_a_body_over_the_limit_is_413_before_it_is_read(demo_tagger):
    from fastapi.testclient import TestClient

    with TestClient(create_app({"demo": demo_tagger}, max_body=100)) as small:
        answer = small.post("/tag", content=b'{"text": "' + b"x" * 200 + b'"}')  # Content-Length: 212
        assert (answer.status_code, answer.json()) == (
            413, {"error": "the request body has 212 bytes or more, above this server's limit of 100 (lstm-tag serve --max-body)"})
        answer = small.post("/tag", content=iter([b"x" * 60, b"x" * 60]))  # no Content-Length: counted as it comes
        assert (answer.status_code, answer.json()["error"]) == (413, "the request body has 120 bytes or more, above this server's limit of 100 (lstm-tag serve --max-body)")
        answer = small.post("/process", files={"data": ("big.txt", b"x" * 200)})
        assert answer.status_code == 413 and answer.text.startswith("the request body has ")
        assert small.post("/tag", json={"text": "The dog"}).status_code == 200


def test_a_body_sent_too_slowly_is_408_and_holds_no_thread(demo_tagger):
    """The body is read in the event loop (no thread waits for it) and for at most the limit's seconds."""
    app = create_app({"demo": demo_tagger}, read_seconds=0.2)

    async def slow_body():
        yield b'{"text": '
        await asyncio.sleep(30)  # never sent: the server has answered by then
        yield b'"x"}'

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as web:
            return await web.post("/tag", content=slow_body(), headers={"Content-Type": "application/json"})

    answer = asyncio.run(send())
    assert (answer.status_code, answer.json()) == (408, {"error": "the request body did not arrive within 0.2 s"})


def test_a_bug_is_a_500_with_one_line(demo_tagger, monkeypatch):
    from fastapi.testclient import TestClient

    from lstm_tagger.serve import inputs

    def broken(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(inputs, "document", broken)
    with TestClient(create_app({"demo": demo_tagger}), raise_server_exceptions=False) as web:
        answer = web.post("/tag", json={"tokens": [["x"]]})
    assert (answer.status_code, answer.json()) == (
        500, {"error": "internal error (a bug; the traceback is in the server's log): something broke"})


def test_serve_refuses_a_missing_model_and_a_port_in_use(tiny_run, tmp_path):
    result = runner.invoke(cli_app, ["serve", "--model", str(tmp_path / "nope")])
    assert_one_line_error(result, f"{tmp_path / 'nope'}: checkpoint not found")
    result = runner.invoke(cli_app, ["serve", "--model", "bad name=x"])
    assert_one_line_error(result, "--model bad name=x: NAME=PATH needs a NAME of letters")
    result = runner.invoke(cli_app, ["serve", "--model", f"a={tiny_run}", "--model", f"a={tiny_run}", "--threads", "1"])
    assert_one_line_error(result, "--model: two models are named 'a'")
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli_app, ["serve", "--model", str(tiny_run), "--port", str(port), "--threads", "1"])
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}: Address already in use")

