"""Reading a training config: a YAML file (or text) + dotted ``--set`` overrides -> a checked ``Config``.

Unknown keys, wrong types and impossible values are fatal and reported all at once, one
line each naming the file (or the ``--set`` text) and the dotted key, e.g.
``configs/x.yaml: model.hidden_dim: must be > 0`` (at most ``limits.MAX_ERROR_LINES`` of them).
Relative data paths are resolved against the folder of the config file, so a config
works from any working directory. The YAML itself is read strictly (``_Loader``): duplicate
keys, aliases of mappings and deep nesting are errors naming the line. What a config holds is
``config.py``'s schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lstm_tagger import limits
from lstm_tagger.corpus.resources import CLUSTER_RESOURCES, RESOURCES, missing_cluster_package, missing_package
from lstm_tagger.errors import ConfigError, joined
from lstm_tagger.files import file_kind, read_bytes


from lstm_tagger.config import Config


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, but ``1e-3`` is a float (YAML 1.1 wants ``1.0e-3``), and strict and bounded:
    a duplicate key is an error naming both lines; an alias (``*name``) may only stand for a
    scalar, at most ``limits.MAX_YAML_ALIASES`` times (an alias of a mapping or list can
    expand exponentially or refer to itself); nesting is at most ``limits.MAX_YAML_DEPTH`` deep."""

    source = "<yaml>"

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def _refuse(self, mark: yaml.Mark, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}:{mark.line + 1}: {problem}")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > limits.MAX_YAML_ALIASES:
                raise self._refuse(event.start_mark, f"more than {limits.MAX_YAML_ALIASES} YAML aliases")
            target = self.anchors.get(event.anchor)
            if target is not None and not isinstance(target, yaml.ScalarNode):
                raise self._refuse(
                    event.start_mark, f"alias *{_shown(event.anchor)} stands for a mapping or list: not allowed, write it out"
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > limits.MAX_YAML_DEPTH:
                raise self._refuse(event.start_mark, f"nested more than {limits.MAX_YAML_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                line = first_line.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the constructor reports it
                continue
            if line != key_node.start_mark.line + 1:
                raise self._refuse(key_node.start_mark, f"duplicate key {_shown(str(key))} (first at line {line})")
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, source: str) -> Any:
    """``text`` through ``_Loader``; its own errors name ``source`` and the line."""
    loader = _Loader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "missing required key",
}


def _message(error: dict[str, Any]) -> str:
    """Pydantic's message made short and lower-case: 'must be > 0' style."""
    kind = error["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    ctx = error.get("ctx") or {}
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        (limit,) = ctx.values()
        return f"must be {bounds[kind]} {limit}, got {error['input']!r}"
    if kind == "value_error":
        return f"{ctx['error']}, got {error['input']!r}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {error['input']!r}"
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {error['input']!r}"


def _shown(text: str) -> str:
    """User text as it goes into a one-line message: quoted if it holds a line break or control character."""
    return text if text.isprintable() else repr(text)


_YAML_FAILURES = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)
"""What PyYAML raises, besides ``YAMLError``, on text such as ``2024-02-30`` or ``!!int x``."""


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> Python data; any failure (the parser raises more than ``YAMLError``) is a ``ConfigError``."""
    try:
        return _load_yaml(text, where)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"{where}:{mark.line + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {_shown(problem)}") from None
    except _YAML_FAILURES as exc:
        raise ConfigError(f"{where}: invalid YAML: {_shown(str(exc) or type(exc).__name__)}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"model.hidden_dim=256"`` -> ``(["model", "hidden_dim"], 256)``; values are YAML scalars."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {_shown(text)}: expected KEY=VALUE, e.g. --set model.hidden_dim=256")
    try:
        value = _load_yaml(raw, f"--set {_shown(text)}") if raw.strip() else None
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. "a: b"): the text itself
    except _YAML_FAILURES as exc:
        raise ConfigError(f"--set {_shown(text)}: invalid value: {_shown(str(exc) or type(exc).__name__)}") from None
    return key.strip().split("."), value


Problem = tuple[tuple[str, ...], str, str | None]
"""One thing wrong with a config: (dotted location, message, the ``--set`` text that put it there, if one did)."""


def _apply_overrides(raw: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], list[tuple[tuple[str, ...], str]], list[Problem]]:
    """Set each dotted ``KEY=VALUE`` in a copy of the raw config mapping.

    Returns the mapping, the (key path, text) of each override applied, and the problems of
    those that could not be (a malformed one raises at once: it has no key to name).
    """
    result = _deep_copy(raw)
    applied: list[tuple[tuple[str, ...], str]] = []
    problems: list[Problem] = []
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append((tuple(path[: depth + 1]), "is not a section", text))
                break
            node = child
        else:
            node[path[-1]] = value
            applied.append((tuple(path), text))
    return result, applied, problems


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    return value


def _schema_problems(raw: dict[str, Any]) -> list[Problem]:
    """Every unknown key, wrong type and impossible value of ``raw``, in pydantic's order
    (``data.tag_column``, replaced by ``data.columns``, first)."""
    data = raw.get("data")
    if isinstance(data, dict) and "tag_column" in data:
        message = f"replaced by data.columns, a list of upos, xpos, feats (write columns: [{_shown(str(data['tag_column']))}])"
        return [(("data", "tag_column"), message, None)]
    try:
        Config.model_validate(raw)
    except ValidationError as exc:
        return [_problem(error) for error in exc.errors()]
    return []


def _problem(error: Any) -> Problem:
    """One pydantic error as a problem; a check across sections (no location) names its own key."""
    if not error["loc"] and error["type"] == "value_error":
        key, _, message = str(error["ctx"]["error"]).partition(": ")
        return (tuple(key.split(".")), message, None)
    return (tuple(str(part) for part in error["loc"]), _message(error), None)


PATH_KEYS = (("data", "train"), ("data", "dev"), ("data", "test"), ("model", "vectors"), ("model", "clusters"))
"""The keys that name files: relative to the config's folder, and they must exist."""

NAMED = {("model", "vectors"): (RESOURCES, missing_package), ("model", "clusters"): (CLUSTER_RESOURCES, missing_cluster_package)}
"""The file keys that also take the name of an installed resource: its names, and what says that its package is missing."""


def _resolve_path(value: str, base: Path) -> tuple[str, str | None]:
    """``value`` as an absolute path (relative to ``base``), and what makes it unusable (``None``: nothing)."""
    try:
        path = Path(value).expanduser()
        return str((path if path.is_absolute() else base / path).resolve()), None
    except (OSError, ValueError, RuntimeError) as exc:
        return value, f"not a usable path: {_shown(str(exc))}"


def _resolve_file(value: str, base: Path) -> tuple[str, str | None]:
    """``value`` as an absolute path (relative to ``base``), and what is wrong with it (``None``: it is a file)."""
    resolved, problem = _resolve_path(value, base)
    if problem is not None:
        return resolved, problem
    path = Path(resolved)
    try:
        mode = path.stat().st_mode if path.exists() else None
    except (OSError, ValueError) as exc:
        return value, f"not a usable path: {_shown(str(exc))}"
    if mode is None:
        return str(path), f"file not found: {_shown(str(path))}"
    if file_kind(mode) != "a regular file":
        return str(path), f"{_shown(str(path))} is {file_kind(mode)}, expected a regular file"
    return str(path), None


def _path_problems(raw: dict[str, Any], base: Path) -> list[Problem]:
    """A problem for each file key whose (string) value is not a file, and for each teacher path that is unusable;
    a named resource (``model.vectors``, ``model.clusters``) whose package is not installed is one too."""
    problems = []
    for section, key in PATH_KEYS:
        value = raw.get(section, {}).get(key) if isinstance(raw.get(section), dict) else None
        names, missing_of = NAMED.get((section, key), ({}, None))
        if missing_of is not None and value in names:
            missing = missing_of(value)
            if missing is not None:
                problems.append(((section, key), missing.removeprefix(f"{section}.{key}: "), None))
            continue
        if isinstance(value, str):
            problem = _resolve_file(value, base)[1]
            if problem is not None:
                problems.append(((section, key), problem, None))
    teachers = raw.get("train", {}).get("teacher") if isinstance(raw.get("train"), dict) else None
    named: list[tuple[tuple[str, ...], str]] = []
    if isinstance(teachers, str):
        named = [(("train", "teacher"), teachers)]
    elif isinstance(teachers, list):
        named = [(("train", "teacher", str(i)), value) for i, value in enumerate(teachers) if isinstance(value, str)]
    for location, value in named:  # runs or files: that they exist is checked when training starts (distill.py)
        problem = _resolve_path(value, base)[1]
        if problem is not None:
            problems.append((location, problem, None))
    return problems


def _line(problem: Problem, source: str, applied: list[tuple[tuple[str, ...], str]]) -> str:
    """``source: dotted.key: message``, or ``--set TEXT: dotted.key: message`` when an override set that key (or its section)."""
    location, message, text = problem
    for path, override in reversed(applied):
        if text is None and location[: len(path)] == path:
            text = override
            break
    where = source if text is None else f"--set {_shown(text)}"
    return f"{where}: {_shown('.'.join(location)) or '(top level)'}: {message}"


def check_config(raw: Any, source: str, base: Path, overrides: list[str] | None = None) -> Config:
    """The parsed YAML of ``source`` with ``overrides`` applied -> a ``Config`` whose file paths
    are absolute (relative ones are relative to ``base``) and exist.

    Every problem found is one line of the ``ConfigError``, e.g.
    ``configs/x.yaml: model.hidden_dim: must be > 0, got 0``, or, when a ``--set`` put the value
    there, ``--set model.hidden_dim=0: model.hidden_dim: must be > 0, got 0``.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with sections data, model, train")
    raw, applied, problems = _apply_overrides(raw, overrides or [])
    problems += _schema_problems(raw) + _path_problems(raw, base)
    if problems:
        raise ConfigError(joined([_line(problem, source, applied) for problem in problems], limits.MAX_ERROR_LINES))
    config = Config.model_validate(raw)
    updates = {}
    for key in ("train", "dev", "test"):
        if getattr(config.data, key) is not None:
            updates[key] = _resolve_file(getattr(config.data, key), base)[0]
    config = config.model_copy(update={"data": config.data.model_copy(update=updates)})
    for (_, key), (names, _) in NAMED.items():  # a file, not a name: relative to the config's folder
        value = getattr(config.model, key)
        if value is not None and value not in names:
            config = config.model_copy(update={"model": config.model.model_copy(update={key: _resolve_file(value, base)[0]})})
    if config.train.teacher:
        teachers = [_resolve_path(t, base)[0] for t in config.train.teacher]
        config = config.model_copy(update={"train": config.train.model_copy(update={"teacher": teachers})})
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override, validate and resolve a YAML config (see ``check_config``); every failure is a ``ConfigError``."""
    path = Path(path)
    source = str(path)
    try:
        text = read_bytes(path, ConfigError, "config file", limits.MAX_CONFIG_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start + 1})") from None
    return config_from_text(text, source, path.resolve().parent, overrides)


def config_from_text(text: str, source: str, base: Path, overrides: list[str] | None = None) -> Config:
    """``load_config`` of YAML text: ``source`` names it in errors, relative paths are relative to ``base``."""
    raw = parse_yaml(text, source)
    return check_config({} if raw is None else raw, source, base, overrides)
