"""The web application: a JSON API (``POST /tag``), UDPipe's REST API (``POST /process``,
``GET /models``), ``GET /health``, the OpenAPI description (``/openapi.json``) and the web page.

Every request is read within the server's limits (``bodies``), its input read into sentences
in a worker thread (``inputs``: segmenting raw text is the costly part), its sentences tagged
with those of the other requests waiting (``batching``), and the output written by the
pipeline's own writers, so it is ``lstm-tag predict``'s for the same input. A request's mistake
is a 4xx and one line (JSON ``{"error": ...}``, or plain text for ``/process`` as UDPipe's
server answers); a bug is a 500 with one line, its traceback only in the server's log.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, AsyncIterator, Callable, Mapping

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from lstm_tagger import __version__
from lstm_tagger.errors import UserError, one_line
from lstm_tagger.limits import MAX_REQUEST_BYTES, REQUEST_READ_SECONDS
from lstm_tagger.serve import inputs
from lstm_tagger.serve.batching import DEFAULT_WAIT, SHORT_TEXT_CHARS
from lstm_tagger.serve.bodies import RequestError, TagRequest, form_fields, read_body, tag_request
from lstm_tagger.serve.models import Served, close, serving
from lstm_tagger.tagging.document import Document
from lstm_tagger.tagging.pipeline import Pipeline

log = logging.getLogger("lstm_tagger.serve")
ACKNOWLEDGEMENTS = [f"lstm-tag {__version__}"]
UDPIPE_INPUTS = ("conllu", "horizontal", "vertical")
UDPIPE_OUTPUTS = {"conllu": Document.to_conllu, "horizontal": inputs.horizontal, "vertical": inputs.vertical}
INLINE_SENTENCES = 8
"""A request of at most this many sentences has its ``Document`` and output built in the event loop's thread."""
TAG_OUTPUTS = {"conllu": Document.to_conllu, "text": Document.to_text}
router = APIRouter()


@dataclass
class Settings:
    max_body: int = MAX_REQUEST_BYTES
    read_seconds: float = REQUEST_READ_SECONDS


def create_app(
    pipelines: Mapping[str, Pipeline], max_body: int = MAX_REQUEST_BYTES, read_seconds: float = REQUEST_READ_SECONDS,
    wait: float = DEFAULT_WAIT,
) -> FastAPI:
    """The application serving ``pipelines`` by name (the first is the default); their batchers
    run from the application's start to its end (its lifespan)."""
    if not pipelines:
        raise UserError("no model to serve")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.models = serving(pipelines, wait)
        try:
            yield
        finally:
            await run_in_threadpool(close, app.state.models)

    app = FastAPI(
        title="lstm-tag", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Part-of-speech tagging: a JSON API (/tag) and UDPipe's REST API (/process, /models).",
    )
    app.state.settings = Settings(max_body, read_seconds)
    app.add_exception_handler(UserError, _refused)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _bug)
    app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("lstm_tagger.serve", "static")]), name="static")
    return app


def _error(request: Request, status: int, message: str) -> Response:
    """One line: plain text for UDPipe's ``/process`` (as its server answers), else ``{"error": ...}``."""
    if request.url.path == "/process":
        return PlainTextResponse(message + "\n", status_code=status)
    return JSONResponse({"error": message}, status_code=status)


async def _refused(request: Request, exc: Exception) -> Response:
    status = exc.status if isinstance(exc, RequestError) else 400
    return _error(request, status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(request, 500, f"internal error (a bug; the traceback is in the server's log): {one_line(exc)[:300]}")


def _models(request: Request) -> dict[str, Served]:
    return request.app.state.models


def _model(request: Request, name: str | None, prefix: bool = False) -> Served:
    """The model named ``name`` (None or empty: the first); with ``prefix``, as UDPipe's server
    does, else the first whose name starts with ``name``."""
    models = _models(request)
    if not name:
        return next(iter(models.values()))
    if name in models:
        return models[name]
    starting = [model for key, model in models.items() if prefix and key.startswith(name)]
    if starting:
        return starting[0]
    raise RequestError(400, f"model {name!r} is not served here: the models are {', '.join(map(repr, models))}")


async def _body(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    return await read_body(request, settings.max_body, settings.read_seconds)


async def _until_gone(receive: Callable[[], Any]) -> None:
    """Return when the client disconnects (uvicorn says so once the body has been read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(request: Request, future: Future) -> list:
    """What the batcher's ``future`` gives; the job is dropped unread if the client goes away first."""
    waiting = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_until_gone(request.receive))
    try:
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not waiting.done():
        waiting.cancel()  # cancels the batcher's job unless its batch has started
        raise RequestError(400, "the client went away before its answer was ready")
    return waiting.result()


async def _tagged(request: Request, served: Served, parsed: inputs.Parsed, scores: bool) -> Document:
    """``parsed`` tagged in a batch with other requests."""
    tagged = await _answer(request, served.batcher.submit(parsed.words, scores))
    return await _document(served, parsed, tagged)


async def _tagged_text(request: Request, served: Served, text: str, scores: bool) -> Document:
    """Raw ``text`` segmented and tagged: short text in a batch with other requests' texts, long
    text segmented in a worker thread first."""
    if len(text) > SHORT_TEXT_CHARS:
        parsed = await run_in_threadpool(inputs.from_text, served.pipeline, text, served.segmenting)
        return await _tagged(request, served, parsed, scores)
    job, future = served.batcher.submit_text(text, scores)
    tagged = await _answer(request, future)
    return await _document(served, inputs.from_segmented(text, job.segmented), tagged)


async def _document(served: Served, parsed: inputs.Parsed, tagged: list) -> Document:
    """The ``Document`` of ``parsed`` and its tags (see ``_small``)."""
    return await _small(len(tagged), inputs.document, served.pipeline, parsed, tagged)


async def _small(sentences: int, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` for a request of ``sentences``: here for a few (a worker thread costs
    more than the work), else in a worker thread (the event loop must not wait for it)."""
    if sentences <= INLINE_SENTENCES:
        return function(*args)
    return await run_in_threadpool(function, *args)


TAG_EXAMPLE = {"text": "Don't stop. The dog ate the apple", "format": "json", "scores": False}


@router.post(
    "/tag",
    summary="Tag raw text, pre-split tokens or CoNLL-U",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": TagRequest.model_json_schema(), "example": TAG_EXAMPLE}}}},
)
async def tag(request: Request) -> Response:
    """Exactly one of ``text``, ``tokens`` (``[["The", "dog"], ...]``) or ``conllu``; ``format``
    ``json`` (default: ``{"model", "sentences"}``, each sentence as ``predict --format json`` writes
    it), ``conllu`` or ``text`` (``predict``'s bytes, as text/plain); ``scores`` adds probabilities."""
    body = tag_request(await _body(request))
    served = _model(request, body.model)
    if body.text is not None:
        doc = await _tagged_text(request, served, body.text, body.scores)
    else:
        if body.tokens is not None:
            parsed = inputs.from_tokens(body.tokens)
        else:
            parsed = await run_in_threadpool(inputs.from_lines, body.conllu, "conllu", "conllu")
        doc = await _tagged(request, served, parsed, body.scores)
    if body.format == "json":
        return JSONResponse({"model": served.name, "sentences": doc.to_dict()["sentences"]})
    return PlainTextResponse(await _small(len(doc.records), TAG_OUTPUTS[body.format], doc))


PROCESS_FIELDS = {
    "data": "the input (required)", "model": "a model's name, or the start of one (default: the first)",
    "tokenizer": "present: data is raw text to split into sentences and tokens (its value is ignored)",
    "tagger": "ignored: the model always tags", "parser": "refused: lstm-tag has no parser",
    "input": "without tokenizer: conllu (default), horizontal or vertical", "output": "conllu (default), horizontal or vertical",
}


@router.get("/process", operation_id="process_get", summary="UDPipe's REST API: tokenize and tag (query parameters)")
@router.post(
    "/process", operation_id="process", summary="UDPipe's REST API: tokenize and tag",
    openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["data"],
        "properties": {name: {"type": "string", "description": text} for name, text in PROCESS_FIELDS.items()}}}}}},
)
async def process(request: Request) -> JSONResponse:
    """UDPipe's ``/process``: form fields (or query parameters) as UDPipe's server reads them;
    the answer is ``{"model", "acknowledgements", "result"}`` with the output in ``result``."""
    fields = form_fields(request.headers.get("content-type", ""), await _body(request), request.scope.get("query_string", b""))
    if "data" not in fields:
        raise RequestError(400, "the field data is missing: give the text to process (curl -F data=@file.txt ...)")
    if "parser" in fields:
        raise RequestError(400, "lstm-tag has no parser: leave out the parser field (it tags UPOS, XPOS and FEATS, not HEAD and DEPREL)")
    output = fields.get("output", "conllu")
    if output not in UDPIPE_OUTPUTS:
        raise RequestError(400, f"output={output!r}: lstm-tag writes {', '.join(UDPIPE_OUTPUTS)}")
    served = _model(request, fields.get("model"), prefix=True)
    if "tokenizer" in fields:
        doc = await _tagged_text(request, served, fields["data"], False)
    else:
        doc = await _tagged(request, served, await run_in_threadpool(_udpipe_input, served, fields), False)
    result = await _small(len(doc.records), UDPIPE_OUTPUTS[output], doc)
    return JSONResponse({"model": served.name, "acknowledgements": ACKNOWLEDGEMENTS, "result": result})


def _udpipe_input(served: Served, fields: Mapping[str, str]) -> inputs.Parsed:
    """``data`` read as UDPipe's server reads it without ``tokenizer``: as ``input`` says."""
    data = fields["data"]
    kind = fields.get("input", "conllu")
    if kind not in UDPIPE_INPUTS:
        raise RequestError(400, f"input={kind!r}: lstm-tag reads {', '.join(UDPIPE_INPUTS)}, or raw text with the tokenizer field")
    if kind == "vertical":
        return inputs.from_vertical(data, "data")
    return inputs.from_lines(data, "data", "conllu" if kind == "conllu" else "tokens")


@router.get("/models", operation_id="models_get", summary="UDPipe's model list")
@router.post("/models", operation_id="models", summary="UDPipe's model list")
async def models(request: Request) -> dict[str, Any]:
    """``{"models": {name: ["tokenizer", "tagger"]}, "default_model": name}``, as UDPipe's server answers."""
    served = _models(request)
    return {"models": {name: model.components for name, model in served.items()}, "default_model": next(iter(served))}


@router.get("/health", summary="Whether the server is up, and its models")
async def health(request: Request) -> dict[str, Any]:
    served = _models(request)
    return {"status": "ok", "models": {name: {"path": str(m.pipeline.path), "columns": m.pipeline.columns,
                                              "segmenter": m.pipeline.has_segmenter} for name, m in served.items()}}


@router.get("/", include_in_schema=False)
async def page() -> HTMLResponse:
    """The web page (``static/index.html``, with its script and style under ``/static/``)."""
    return HTMLResponse(resources.files("lstm_tagger.serve").joinpath("static", "index.html").read_text(encoding="utf-8"))
