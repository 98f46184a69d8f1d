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
# libyaml's loader where PyYAML was built with it (ten times faster), else the pure one.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DocumentError(ValueError):
    """A document that does not parse or validate; the message names file, line and key."""


def parse_yaml_text(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The data and the node tree of a YAML text (nodes carry line numbers)."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DocumentError(f"{source}{where}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, root


def validate(model: type[M], text: str, source: str, extra: dict[str, Any] | None = None) -> M:
    """Parse ``text`` and validate it as ``model``; errors name ``source``, line and key."""
    data, root = parse_yaml_text(text, source)
    if not isinstance(data, dict):
        raise DocumentError(f"{source}: expected a mapping of keys at the top level")
    try:
        return model.model_validate({**data, **(extra or {})})
    except ValidationError as exc:
        raise DocumentError(explain(exc, root, source)) from None


def read_text(path: str | Path, what: str = "file") -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read {what}: {exc.strerror}") from None


def explain(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    """Every validation error as ``file:line: key.path: message``."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        line = line_of(root, loc)
        where = f"{source}:{line}" if line else source
        key = ".".join(str(p) for p in loc) or "(top level)"
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
