"""Validated YAML documents: profiles, bench files, scenario packs.

Every configuration file stslab reads is YAML validated by a pydantic model. This module
turns a validation failure into lines that name the file, the line and the key path
(``bench.yaml:12: instruments.keypad.timeout_s: Input should be greater than 0``), so a
user can go straight to the mistake. It works on text: reading files is the caller's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

#: libyaml's parser where PyYAML has it (ten times faster: every campaign reads its whole pack),
#: else the pure-Python one; both give the same nodes with line marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DocumentError(ValueError):
    """A document that does not parse or validate; the message names file, line and key."""


def parse_yaml_text(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree of a YAML text (nodes carry line numbers). A syntax error
    or a key given twice in one mapping is a :class:`DocumentError` naming line and key."""
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise DocumentError(_syntax_error(exc, text, source)) from None
    finally:
        loader.dispose()
    _refuse_duplicate_keys(root, source, (), _Walk())
    return data, root


def _syntax_error(exc: yaml.YAMLError, text: str, source: str) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context", None) or ""
    context_mark = getattr(exc, "context_mark", None)
    if context_mark is not None and ("flow" in context or "quoted" in context):
        # An unclosed bracket or quote: the mistake is where it opened, not where it was noticed.
        if mark is not None:
            problem = f"{problem} (line {mark.line + 1})"
        problem = f"{context.removeprefix('while ')}: {problem}"
        mark = context_mark
    elif context and not context.startswith("while "):
        problem = f"{context}, {problem}"
    mark = mark or context_mark
    line = mark.line + 1 if mark is not None else 1
    return f"{source}:{line}: {key_path(_path_at(text, mark))}: not valid YAML: {problem}"


def key_path(loc: tuple[Any, ...]) -> str:
    """``instruments.keypad.timeout_s``; ``(top level)`` for the document itself."""
    return ".".join(key_name(p) for p in loc) or "(top level)"


def key_name(part: Any) -> str:
    """One key of a path as a message shows it: quoted when empty or holding a character
    that is not printable (a line break in a key would cut the message's line in two)."""
    text = str(part)
    return text if text and text.isprintable() else repr(text)


def located(source: str, loc: tuple[Any, ...], text: str | None = None) -> str:
    """``file:line: key.path`` for a key of a document already loaded (``text``, or the file
    ``source`` read again), for problems found after validation."""
    if text is None:
        try:
            text = Path(source).read_text()
        except OSError:
            return f"{source}: {key_path(loc)}"
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError:
        return f"{source}: {key_path(loc)}"
    line = line_of(root, loc)
    return f"{source}:{line}: {key_path(loc)}" if line else f"{source}: {key_path(loc)}"


def _path_at(text: str, mark: yaml.Mark | None) -> tuple[Any, ...]:
    """The key path of the node being read where a YAML error was found: the parser's events
    are replayed up to the error (or up to ``mark``), tracking mapping keys and list items."""
    frames: list[dict[str, Any]] = []  # per open collection: map?, key, want_key, index, role

    def node_starts(event: yaml.Event) -> str:
        if not frames:
            return "root"
        top = frames[-1]
        if not top["map"]:
            top["index"] += 1
            return "item"
        if top["want_key"]:
            top["key"] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
            top["want_key"] = False
            return "key"
        return "value"

    def node_ends(role: str) -> None:
        if frames and frames[-1]["map"] and role == "value":
            frames[-1]["want_key"] = True

    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if mark is not None and event.start_mark.index >= mark.index:
                break
            if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                node_ends(node_starts(event))
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                role = node_starts(event)
                is_map = isinstance(event, yaml.MappingStartEvent)
                frames.append({"map": is_map, "key": None, "want_key": True, "index": -1,
                               "role": role})  # fmt: skip
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)) and frames:
                node_ends(frames.pop()["role"])
    except yaml.YAMLError:
        pass
    path: list[Any] = []
    for frame in frames:
        if frame["map"] and frame["key"] is not None:
            path.append(frame["key"])
        elif not frame["map"] and frame["index"] >= 0:
            path.append(frame["index"])
    return tuple(path)


#: Values a document may hold once its aliases are expanded: far above any configuration,
#: far below what takes long to read (nested aliases grow exponentially: "billion laughs").
MAX_VALUES = 100_000


class _Walk:
    """The walk over a document's nodes: the collections open along the current path (an
    alias to one of them makes the document endless) and the values seen so far."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.seen = 0


def _refuse_duplicate_keys(
    node: yaml.Node | None, source: str, loc: tuple[Any, ...], walk: _Walk
) -> None:
    # PyYAML keeps the last of two equal keys without a word: a silently lost setting.
    walk.seen += 1
    if walk.seen > MAX_VALUES and node is not None:
        raise DocumentError(f"{source}:{node.start_mark.line + 1}: {key_path(loc)}: the "
                            f"document holds more than {MAX_VALUES} values once its aliases "
                            "are expanded")  # fmt: skip
    if isinstance(node, yaml.CollectionNode):
        if id(node) in walk.open:
            raise DocumentError(f"{source}:{node.start_mark.line + 1}: {key_path(loc)}: an "
                                "alias to a value that contains it (the value would be "
                                "endless)")  # fmt: skip
        walk.open.add(id(node))
        try:
            _refuse_duplicate_keys_in(node, source, loc, walk)
        finally:
            walk.open.discard(id(node))


def _refuse_duplicate_keys_in(
    node: yaml.CollectionNode, source: str, loc: tuple[Any, ...], walk: _Walk
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                first = seen.get((key.tag, key.value))
                if first is not None:
                    raise DocumentError(
                        f"{source}:{line}: {key_path((*loc, key.value))}: given twice "
                        f"(first on line {first})"
                    )
                seen[(key.tag, key.value)] = line
                _refuse_duplicate_keys(value, source, (*loc, key.value), walk)
            else:
                _refuse_duplicate_keys(value, source, loc, walk)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, source, (*loc, index), walk)


def validate(model: type[M], text: str, source: str, extra: dict[str, Any] | None = None) -> M:
    """Parse ``text`` and validate it as ``model``; errors name ``source``, line and key."""
    data, root = parse_yaml_text(text, source)
    if not isinstance(data, dict):
        raise DocumentError(not_a_mapping(data, root, source))
    try:
        return model.model_validate({**data, **(extra or {})})
    except ValidationError as exc:
        raise DocumentError(explain(exc, root, source)) from None


def not_a_mapping(data: Any, root: yaml.Node | None, source: str) -> str:
    """The message for a document that is not a mapping of keys (an empty file, a list …)."""
    if data is None:
        return f"{source}:1: (top level): the file is empty; expected a mapping of keys"
    kind = "a list" if isinstance(data, list) else f"the value {data!r}"
    line = root.start_mark.line + 1 if root is not None else 1
    return f"{source}:{line}: (top level): expected a mapping of keys, not {kind}"


def read_text(path: str | Path, what: str = "file") -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read {what}: {exc.strerror}") from None
    return decode_text(data, str(path), what)


def decode_text(data: bytes, source: str, what: str = "file") -> str:
    """UTF-8 text; a :class:`DocumentError` naming the line of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DocumentError(f"{source}:{line}: (top level): the {what} is not UTF-8 text "
                            f"(byte {data[exc.start]:#04x})") from None  # fmt: skip


def explain(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    """Every validation error as ``file:line: key.path: message``."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        loc = loc[:-1] if loc[-1:] == ("[key]",) else loc  # a mapping key's own name
        line = line_of(root, loc)
        where = f"{source}:{line}" if line else source
        key = key_path(loc)
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{where}: {key}: {msg}")
    return "\n".join(lines)


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest node along ``loc`` that exists."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if str(k.value) == str(part):
                    best = k.start_mark.line + 1
                    nxt = v
                    break
            if nxt is None:
                return best
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return best
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            return best
    return best
