"""What the fuzzing tests share: a time limit that turns a hang into a failure, and inputs
made by damaging real ones (text edits, values of the wrong type, raw bytes)."""

from __future__ import annotations

import contextlib
import copy
import functools
import signal
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

#: Characters that mean something to YAML, and a few that mean something to nobody.
YAML_CHARS = st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?\n\t ") + list("aZ09_.") + ["é", "\x00",
                             "\x85", "\u2028", "\ufeff", "𝄞"])  # fmt: skip


def fuzz_settings(modest: int) -> settings:
    """Settings for a fuzzing test: the ``fuzz`` profile's case count when it is loaded
    (``pytest --hypothesis-profile fuzz``), else ``modest`` cases so the suite stays quick. No
    per-case deadline (a busy machine is no fault): :func:`within` says what hangs."""
    try:
        long_run = settings.default is settings.get_profile("fuzz")
    except InvalidArgument:  # tests/conftest.py not loaded: no fuzz profile
        long_run = False
    return settings(
        max_examples=settings.default.max_examples if long_run else modest,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


class Hung(Exception):
    """A parser did not return within its time limit."""


@contextlib.contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Fail (:class:`Hung`) when the block runs longer than ``seconds`` (main thread only)."""

    def alarm(_signum: int, _frame: Any) -> None:
        raise Hung(f"{what} still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@st.composite
def edited(draw: st.DrawFn, base: str) -> str:
    """``base`` with one to four edits: a slice removed, text put in, a line repeated,
    dropped or shifted."""
    text = base
    for _ in range(draw(st.integers(1, 4))):
        lines = text.splitlines(keepends=True) or [""]
        kind = draw(st.sampled_from(["delete", "insert", "replace", "repeat", "drop", "indent"]))
        if kind in ("delete", "insert", "replace"):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 40)))
            piece = "" if kind == "delete" else draw(st.text(YAML_CHARS, max_size=24))
            text = text[:i] + piece + text[j if kind != "insert" else i :]
        else:
            n = draw(st.integers(0, len(lines) - 1))
            if kind == "repeat":
                lines.insert(n, lines[n])
            elif kind == "drop":
                del lines[n]
            else:
                lines[n] = draw(st.sampled_from([" ", "  ", "\t", "- "])) + lines[n]
            text = "".join(lines)
    return text


#: Values of every YAML type, nested.
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def retyped(draw: st.DrawFn, base: str) -> str:
    """``base`` (a YAML document) with one to three values replaced by values of any type, or
    keys removed: valid YAML that the schema must judge."""
    data = copy.deepcopy(_loaded(base))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))  # a key path, () for the whole document
        if not path:
            data = draw(VALUES)
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) or not isinstance(parent, dict):
            parent[path[-1]] = draw(VALUES)
        else:
            del parent[path[-1]]
        if not isinstance(data, (dict, list)):
            break
    return yaml.dump(data, Dumper=_DUMPER, allow_unicode=True, sort_keys=False)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.cache
def _loaded(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)


def damaged(base: str) -> st.SearchStrategy[str]:
    """Every way of damaging a document the fuzzing tests use, and text from nowhere."""
    return edited(base) | retyped(base) | st.text(YAML_CHARS, max_size=200)
