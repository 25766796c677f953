"""Reading a request's body, within the server's limits, into checked values; one error each.

Every mistake in a request (a body too large or too slow, bytes that are not UTF-8, JSON of
the wrong shape, a form field out of place) is a ``RequestError``: a 4xx status and one line
that says what was wrong, which the app sends back. Nothing here tags.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import parse_qsl

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import create_form_parser
from starlette.requests import ClientDisconnect, Request

from lstm_tagger.errors import UserError


class RequestError(UserError):
    """A request the server refuses: ``status`` (4xx) and the one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class TagRequest(BaseModel):
    """The JSON body of ``POST /tag``: exactly one of ``text`` (raw text), ``tokens`` (sentences,
    each a list of words) or ``conllu``; the output ``format`` and whether to add ``scores``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | None = None
    tokens: list[list[str]] | None = None
    conllu: str | None = None
    model: str | None = None
    format: Literal["json", "conllu", "text"] = "json"
    scores: bool = False


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The whole body: 413 past ``limit`` bytes (before reading, when Content-Length says so),
    408 if it has not all arrived within ``seconds``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks, size = [], 0
    try:
        with anyio.fail_after(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(size, limit)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(408, f"the request body did not arrive within {seconds:g} s") from None
    except ClientDisconnect:
        raise RequestError(400, "the client went away before sending the whole body") from None
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> RequestError:
    return RequestError(413, f"the request body has {size:,} bytes or more, above this server's limit of {limit:,} (lstm-tag serve --max-body)")


def utf8(data: bytes, what: str) -> str:
    """``data`` decoded; bytes that are not UTF-8 are a 400 naming ``what`` and the byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"{what} is not UTF-8 (byte {exc.start + 1})") from None


def tag_request(body: bytes) -> TagRequest:
    """``POST /tag``'s body read as JSON and checked (types, unknown keys, one input)."""
    try:
        value = json.loads(utf8(body, "the request body"))
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"the request body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(value, dict):
        raise RequestError(400, f"the request body is a JSON object, not {type(value).__name__}: e.g. {{\"text\": \"The dog barks.\"}}")
    try:
        request = TagRequest.model_validate(value)
    except ValidationError as exc:
        raise RequestError(400, _validation_message(exc)) from None
    _check_characters(value)
    given = [name for name in ("text", "tokens", "conllu") if getattr(request, name) is not None]
    if len(given) != 1:
        which = f"got {' and '.join(given)}" if given else "got none"
        raise RequestError(400, f"give exactly one of text, tokens or conllu: {which}")
    _check_words(request.tokens or [])
    return request


def _check_characters(value: Any) -> None:
    """JSON may escape a lone surrogate (``"\\ud800"``), which is no character and cannot be written back as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(400, f"the request body escapes a lone surrogate ({exc.object[exc.start]!r}), which is not a character") from None


def _check_words(sentences: list[list[str]]) -> None:
    """A word of ``tokens`` is what ``predict --input-format tokens`` reads: not empty, no whitespace."""
    for i, words in enumerate(sentences):
        for j, word in enumerate(words):
            if not word or any(char.isspace() for char in word):
                raise RequestError(400, f"tokens.{i}.{j}: a word is not empty and holds no whitespace, got {word[:60]!r}")


def _validation_message(exc: ValidationError) -> str:
    """The first problem of a checked JSON body as ``key: what is wrong`` (and how many more)."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the request body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def form_fields(content_type: str, body: bytes, query: bytes) -> dict[str, str]:
    """The fields of a UDPipe-style request: the query string's, then the body's (URL-encoded or
    multipart form data, a file part read as its text); every value must be UTF-8."""
    fields = {name: value for name, value in _pairs(query)}
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        fields.update(_pairs(body))
    elif kind == "multipart/form-data":
        fields.update(_multipart(content_type, body))
    elif body:
        raise RequestError(415, f"a form is URL-encoded or multipart/form-data, not {kind or 'untyped'} (e.g. curl -F data=@file.txt)")
    return fields


def _pairs(data: bytes) -> list[tuple[str, str]]:
    """URL-encoded ``name=value`` pairs, names and values UTF-8."""
    try:
        return parse_qsl(data.decode("ascii"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise RequestError(400, "a form field is not UTF-8 (or not URL-encoded)") from None


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    """The parts of multipart form data, by name, as text."""
    parts: dict[str, bytes] = {}

    def field(item: Any) -> None:
        parts[item.field_name.decode("utf-8", "replace")] = item.value or b""

    def file(item: Any) -> None:
        item.file_object.seek(0)
        parts[item.field_name.decode("utf-8", "replace")] = item.file_object.read()

    try:
        parser = create_form_parser({"Content-Type": content_type.encode("latin-1")}, field, file, {"MAX_MEMORY_FILE_SIZE": len(body) + 1})
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise RequestError(400, f"the multipart form data is malformed: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    return {name: utf8(value, f"form field {name!r}") for name, value in parts.items()}
