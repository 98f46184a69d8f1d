"""The meter's LCD as a camera sees it: segment layouts, a seven-segment font, frame rendering.

A :class:`SegmentLayout` is the segment map of one meter model: the image size, the display
glass, N seven-segment digit cells and named annunciator icons, every segment a polygon (or a
few polygons) in image pixels. It is the same map a display reader samples, so a frame rendered
here can be read back with nothing but the map.

Segment ids: ``d1.a`` … ``d1.g``, ``d1.dp`` for the leftmost digit cell, up to ``dN.*`` for the
rightmost; ``ann.<name>`` for annunciators (``ann.relay_open``, ``ann.credit_low``, ``ann.tamper``,
``ann.kwh``, ``ann.currency``, ``ann.keypad_lock`` are required, a layout may add more).

Coordinates follow Pillow's drawing convention: ``(x, y)`` in pixels, origin top left, pixel
``(i, j)`` centred on the integer point.

Camera geometry. :func:`render_with_geometry` returns the :class:`FrameGeometry` of the frame:
the projective map (homography) from layout pixels to frame pixels and where the four glass
corners landed. A reader calibrates the same way: it locates the glass corners in a frame (the
glass is much brighter than the bezel around it), solves the 4-point homography from the
layout's ``glass`` corners to them, and maps every segment polygon through it;
:meth:`SegmentLayout.warped` does exactly that and yields the segment map in frame pixels.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, NamedTuple

import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFilter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from sts.schema import line_of

Point = tuple[float, float]
Polygon = tuple[Point, ...]

SEGMENT_NAMES: tuple[str, ...] = ("a", "b", "c", "d", "e", "f", "g")
"""The seven bars of a digit cell (standard lettering: a top, clockwise, g middle)."""
CELL_SEGMENTS: tuple[str, ...] = (*SEGMENT_NAMES, "dp")
REQUIRED_ANNUNCIATORS: tuple[str, ...] = (
    "relay_open",
    "credit_low",
    "tamper",
    "kwh",
    "currency",
    "keypad_lock",
)

# --------------------------------------------------------------------------------------------
# Seven-segment font

_GLYPHS: dict[str, str] = {
    " ": "",
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
    "-": "g",
    "_": "d",
    "A": "abcefg",
    "b": "cdefg",
    "C": "adef",
    "c": "deg",
    "d": "bcdeg",
    "E": "adefg",
    "F": "aefg",
    "G": "acdef",
    "H": "bcefg",
    "h": "cefg",
    "I": "ef",
    "i": "c",
    "J": "bcde",
    "L": "def",
    "n": "ceg",
    "o": "cdeg",
    "O": "abcdef",
    "P": "abefg",
    "r": "eg",
    "S": "acdfg",
    "t": "defg",
    "U": "bcdef",
    "u": "cde",
    "y": "bcdfg",
}

SEVEN_SEGMENT_FONT: Mapping[str, frozenset[str]] = MappingProxyType(
    {ch: frozenset(segs) for ch, segs in _GLYPHS.items()}
)
"""Every character :func:`encode_text` can show, and its lit segments.

Supported: digits ``0``-``9``, space, ``-`` (segment g), ``_`` (segment d) and the letters
``A b C c d E F G H h I i J L n o O P r S t U u y`` (case as listed: ``b`` and ``B`` differ on
a meter, so only the shape a seven-segment display can draw is accepted). ``I`` lights the
left bars (e f) so it differs from ``1``; ``i`` is the lower right bar (c). ``.`` is not a
cell of its own: it lights the decimal point of the cell before it.
"""

CANONICAL_GLYPHS: Mapping[str, str] = MappingProxyType({"O": "0", "S": "5"})
"""Characters that share a glyph, and the character :func:`decode_cells` returns for it."""

_DECODE: dict[frozenset[str], str] = {}
for _ch, _segs in SEVEN_SEGMENT_FONT.items():
    _DECODE.setdefault(_segs, CANONICAL_GLYPHS.get(_ch, _ch))
del _ch, _segs


def encode_text(text: str, digits: int) -> list[frozenset[str]]:
    """Lit segments of each of ``digits`` cells showing ``text``, leftmost cell first.

    Right-aligned, as meter LCDs show numbers; ``.`` lights the decimal point of the preceding
    cell (a leading ``.`` or a second ``.`` gets a blank cell of its own). Raises ``ValueError``
    naming an unsupported character, or when the text needs more cells than ``digits``.
    """
    if digits < 1:
        raise ValueError(f"a display needs at least one digit cell, got {digits}")
    cells: list[set[str]] = []
    for pos, ch in enumerate(text):
        if ch == ".":
            if not cells or "dp" in cells[-1]:
                cells.append(set())
            cells[-1].add("dp")
            continue
        glyph = SEVEN_SEGMENT_FONT.get(ch)
        if glyph is None:
            raise ValueError(
                f"character {ch!r} at position {pos} of {text!r} cannot be shown on a "
                f"seven-segment display (supported: {''.join(SEVEN_SEGMENT_FONT)!r} and '.')"
            )
        cells.append(set(glyph))
    if len(cells) > digits:
        raise ValueError(f"{text!r} needs {len(cells)} digit cells, the display has {digits}")
    blank = [frozenset[str]()] * (digits - len(cells))
    return blank + [frozenset(c) for c in cells]


def decode_cells(cells: Sequence[Iterable[str]], *, unknown: str | None = None) -> str:
    """The text that digit cells show, one character per cell plus ``.`` for a lit dp.

    The inverse of :func:`encode_text`: blank cells read as spaces (the full width is
    returned; strip it for the meter's text) and shared glyphs read as their canonical
    character (:data:`CANONICAL_GLYPHS`: ``O`` reads ``0``, ``S`` reads ``5``). A pattern that
    is no character raises ``ValueError`` naming the cell, unless ``unknown`` is given, which
    then stands for it.
    """
    out: list[str] = []
    for index, cell in enumerate(cells):
        segs = frozenset(cell)
        stray = segs - set(CELL_SEGMENTS)
        if stray:
            raise ValueError(f"cell {index + 1}: no segment named {sorted(stray)}")
        ch = _DECODE.get(segs - {"dp"})
        if ch is None:
            if unknown is None:
                lit = "".join(sorted(segs - {"dp"}))
                raise ValueError(f"cell {index + 1}: segments {lit!r} show no known character")
            ch = unknown
        out.append(ch + ("." if "dp" in segs else ""))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Segment layout


class LayoutError(ValueError):
    """A segment layout that cannot be used; the message names the file, key and line."""


class _At(ValueError):
    """A layout check failure at a key path (pydantic keeps the exception, so the path
    reaches the YAML error message)."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(f"{_key(loc)}: {msg}")
        self.loc = loc
        self.msg = msg


def _key(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_point(v: object) -> bool:
    return isinstance(v, list | tuple) and len(v) == 2 and all(_is_number(c) for c in v)


def _as_polygon(value: object, what: str, min_points: int = 3) -> Polygon:
    if not isinstance(value, list | tuple) or len(value) < min_points:
        raise ValueError(f"{what}: needs at least {min_points} [x, y] points")
    points = []
    for j, p in enumerate(value):
        if not _is_point(p):
            raise ValueError(f"{what}, point {j}: expected [x, y] numbers, got {p!r}")
        points.append((float(p[0]), float(p[1])))
    return tuple(points)


def _as_shape(value: object) -> tuple[Polygon, ...]:
    """A polygon ``[[x, y], ...]`` or a list of polygons, as a tuple of polygons."""
    if isinstance(value, list | tuple) and value and _is_point(value[0]):
        return (_as_polygon(value, "polygon"),)
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("expected a polygon [[x, y], ...] or a list of polygons")
    return tuple(_as_polygon(p, f"polygon {i}") for i, p in enumerate(value))


def _as_quad(value: object) -> Polygon:
    poly = _as_polygon(value, "glass", min_points=4)
    if len(poly) != 4:
        raise ValueError("glass: expected 4 corners, top-left first and clockwise")
    return poly


Shape = Annotated[tuple[Polygon, ...], BeforeValidator(_as_shape)]
"""One segment's area: one or more polygons; the segment is their union."""


class DigitCell(BaseModel):
    """One seven-segment digit cell: bars a-g and the decimal point after it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    a: Shape
    b: Shape
    c: Shape
    d: Shape
    e: Shape
    f: Shape
    g: Shape
    dp: Shape


class _Raster:
    """A layout's precomputed label image: 0 bezel, 1 glass, 2 + k segment k.

    Derived from the layout's fields alone, so any two rasters of equal layouts are equal;
    it must not take part in model equality (numpy arrays have no truth value).
    """

    def __init__(self, label: np.ndarray, ids: tuple[str, ...]) -> None:
        self.label = label
        # The smallest dtype that holds every label keeps the per-frame lookup cheap.
        self.compact = label.astype(np.uint8 if len(ids) + 2 <= 256 else np.uint16)
        self.ids = ids
        self.index = {sid: k + 2 for k, sid in enumerate(ids)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Raster)

    __hash__ = None  # type: ignore[assignment]


def _fill(shape: Sequence[Polygon], width: int, height: int) -> tuple[int, int, np.ndarray]:
    """Rasterise a shape: (top, left, mask) covering its clipped bounding box."""
    xs = [x for poly in shape for x, _ in poly]
    ys = [y for poly in shape for _, y in poly]
    x0, y0 = max(0, math.floor(min(xs)) - 1), max(0, math.floor(min(ys)) - 1)
    x1, y1 = min(width, math.ceil(max(xs)) + 2), min(height, math.ceil(max(ys)) + 2)
    if x1 <= x0 or y1 <= y0:
        return y0, x0, np.zeros((0, 0), bool)
    img = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(img)
    for poly in shape:
        draw.polygon([(x - x0, y - y0) for x, y in poly], fill=255)
    return y0, x0, np.asarray(img) > 0


_PARSED: dict[tuple[str, str], SegmentLayout] = {}


class SegmentLayout(BaseModel):
    """The segment map of one meter model's LCD, in image pixels.

    Fields are exactly the keys of the layout YAML (see ``dut/profiles/lcd_8digit.yaml``).
    Checked on construction: every point lies in the image, every segment covers at least one
    pixel of the glass, no two segments share a pixel, the required annunciators exist.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    size: tuple[PositiveInt, PositiveInt]
    """Image width and height."""
    glass: Annotated[Polygon, BeforeValidator(_as_quad)]
    """Corners of the display glass: top-left, top-right, bottom-right, bottom-left."""
    digits: tuple[DigitCell, ...] = Field(min_length=1)
    """Digit cells, leftmost first (ids d1, d2, …)."""
    annunciators: Mapping[str, Shape]
    """Icon name -> shape, read-only (ids ann.<name>)."""

    _raster: _Raster = PrivateAttr()

    @field_validator("annunciators")
    @classmethod
    def _named_icons(cls, value: Mapping[str, tuple[Polygon, ...]]) -> Mapping[str, Any]:
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise _At((name,), "annunciator names are lower_snake_case identifiers")
        missing = [n for n in REQUIRED_ANNUNCIATORS if n not in value]
        if missing:
            raise ValueError(f"missing required annunciator(s): {', '.join(missing)}")
        # Read-only, so a layout cannot drift from its precomputed raster.
        return MappingProxyType(dict(value))

    @field_serializer("annunciators")
    def _dump_icons(self, value: Mapping[str, Any]) -> dict[str, Any]:
        return dict(value)

    @model_validator(mode="after")
    def _check_geometry(self) -> SegmentLayout:
        width, height = self.size
        located = [(("glass",), (self.glass,))]
        located += [
            (("digits", i, seg), getattr(cell, seg))
            for i, cell in enumerate(self.digits)
            for seg in CELL_SEGMENTS
        ]
        located += [(("annunciators", n), shape) for n, shape in self.annunciators.items()]
        for loc, shape in located:
            for poly in shape:
                for x, y in poly:
                    if not (0 <= x <= width and 0 <= y <= height):
                        where = f"point ({x:g}, {y:g})"
                        raise _At(loc, f"{where} lies outside the {width}x{height} image")

        label = np.zeros((height, width), np.int32)
        top, left, mask = _fill((self.glass,), width, height)
        if not mask.any():
            raise _At(("glass",), "covers no pixel")
        label[top : top + mask.shape[0], left : left + mask.shape[1]][mask] = 1
        ids = self.segment_ids
        for k, (loc, shape) in enumerate(located[1:]):
            top, left, mask = _fill(shape, width, height)
            region = label[top : top + mask.shape[0], left : left + mask.shape[1]]
            under = region[mask]
            if under.size == 0:
                raise _At(loc, "covers no pixel")
            if (under == 0).any():
                raise _At(loc, "extends beyond the glass")
            if (under >= 2).any():
                raise _At(loc, f"overlaps segment {ids[int(under.max()) - 2]}")
            region[mask] = k + 2
        self._raster = _Raster(label, ids)
        return self

    # -- views -------------------------------------------------------------------------------

    @property
    def digit_count(self) -> int:
        return len(self.digits)

    @property
    def segment_ids(self) -> tuple[str, ...]:
        """Every segment id, digit cells first (left to right, a-g then dp), then icons."""
        ids = [f"d{i + 1}.{seg}" for i in range(len(self.digits)) for seg in CELL_SEGMENTS]
        return (*ids, *(f"ann.{name}" for name in self.annunciators))

    def segment_map(self) -> dict[str, tuple[Polygon, ...]]:
        """Segment id -> its polygons: the flat map a reader samples."""
        out: dict[str, tuple[Polygon, ...]] = {}
        for i, cell in enumerate(self.digits):
            for seg in CELL_SEGMENTS:
                out[f"d{i + 1}.{seg}"] = getattr(cell, seg)
        for name, shape in self.annunciators.items():
            out[f"ann.{name}"] = shape
        return out

    def label_image(self) -> np.ndarray:
        """Per-pixel index (read-only): 0 bezel, 1 glass, ``2 + k`` for ``segment_ids[k]``."""
        view = self._raster.label.view()
        view.flags.writeable = False
        return view

    def warped(self, geometry: FrameGeometry) -> SegmentLayout:
        """This layout as it appears in frames of ``geometry``: the calibrated segment map."""
        h = np.array(geometry.homography, float)

        def move(poly: Polygon) -> list[list[float]]:
            pts = np.hstack([np.array(poly, float), np.ones((len(poly), 1))]) @ h.T
            xy = pts[:, :2] / pts[:, 2:3]
            return [[round(float(x), 2), round(float(y), 2)] for x, y in xy]

        def shape(s: tuple[Polygon, ...]) -> list[list[list[float]]]:
            return [move(p) for p in s]

        return SegmentLayout.model_validate(
            {
                "name": self.name,
                "size": self.size,
                "glass": move(self.glass),
                "digits": [
                    {seg: shape(getattr(c, seg)) for seg in CELL_SEGMENTS} for c in self.digits
                ],
                "annunciators": {n: shape(s) for n, s in self.annunciators.items()},
            }
        )

    # -- YAML --------------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> SegmentLayout:
        """Load and check a layout file; any problem raises :class:`LayoutError` naming the
        file, the key and its line."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LayoutError(f"{path}: cannot read layout: {exc.strerror or exc}") from exc
        # A layout is immutable: one parse serves every meter built on the same file.
        key = (str(path), text)
        layout = _PARSED.get(key)
        if layout is None:
            layout = _PARSED[key] = cls.parse_yaml(text, source=str(path))
        return layout

    @classmethod
    def parse_yaml(cls, text: str, *, source: str = "<layout>") -> SegmentLayout:
        """Parse layout YAML text; ``source`` names it in error messages."""
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise LayoutError(f"{source}:{where}: invalid YAML: {problem}") from exc
        finally:
            loader.dispose()
        if not isinstance(data, dict):
            raise LayoutError(f"{source}: a layout is a mapping with keys {list(cls.model_fields)}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                loc = tuple(err["loc"])
                msg = err["msg"]
                cause = (err.get("ctx") or {}).get("error")
                if isinstance(cause, _At):
                    loc, msg = loc + cause.loc, cause.msg
                elif isinstance(cause, ValueError):
                    msg = str(cause)
                line = line_of(node, tuple(loc)) or 1
                lines.append(f"{source}: {_key(loc)} (line {line}): {msg}")
            raise LayoutError("\n".join(lines)) from None

    @classmethod
    def builtin(cls, name: str = "lcd_8digit") -> SegmentLayout:
        """A layout shipped in ``dut/profiles`` (``lcd_8digit``, ``lcd_6digit``)."""
        folder = resources.files("dut") / "profiles"
        entry = folder / f"{name}.yaml"
        if not entry.is_file():
            known = sorted(p.name[:-5] for p in folder.iterdir() if p.name.startswith("lcd_"))
            raise LayoutError(f"no built-in LCD layout {name!r} (known: {', '.join(known)})")
        text = entry.read_text(encoding="utf-8")
        return cls.parse_yaml(text, source=f"dut/profiles/{name}.yaml")

    def to_yaml(self, header: str = "") -> str:
        """The layout as YAML that :meth:`parse_yaml` reads back to an equal layout."""

        def shape(s: tuple[Polygon, ...]) -> Any:
            polygons = [_Flow(_Flow(p) for p in poly) for poly in s]
            return polygons[0] if len(polygons) == 1 else polygons

        doc = {
            "name": self.name,
            "size": _Flow(self.size),
            "glass": _Flow(_Flow(p) for p in self.glass),
            "digits": [{seg: shape(getattr(c, seg)) for seg in CELL_SEGMENTS} for c in self.digits],
            "annunciators": {n: shape(s) for n, s in self.annunciators.items()},
        }
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)
        return comment + body

    # -- generator ---------------------------------------------------------------------------

    @classmethod
    def seven_segment(
        cls,
        digits: int = 8,
        *,
        size: tuple[int, int] = (640, 240),
        name: str | None = None,
        margin: int = 16,
        slant: float = 0.08,
        thickness: float = 0.17,
        digit_aspect: float = 0.55,
        annunciators_at: str = "top",
    ) -> SegmentLayout:
        """A standard layout: ``digits`` cells in a row, an annunciator strip above or below.

        ``slant`` leans the digits right (x shift per unit of height), ``thickness`` is the bar
        width as a fraction of the cell width, ``digit_aspect`` the largest cell width/height.
        """
        if annunciators_at not in ("top", "bottom"):
            raise ValueError(f"annunciators_at must be 'top' or 'bottom', got {annunciators_at!r}")
        width, height = size
        gx0, gy0, gx1, gy1 = margin, margin, width - margin, height - margin
        gw, gh = gx1 - gx0, gy1 - gy0
        pad = 0.06 * gh
        strip = 0.22 * gh
        digit_h = gh - strip - 3 * pad
        pitch = (gw - 2 * pad) / digits
        cell_w = min(0.72 * pitch, digit_aspect * digit_h)
        pitch = cell_w / 0.72
        # Centre the row as drawn: slanted cells lean right by slant x height.
        row_x = gx0 + (gw - digits * pitch - slant * digit_h) / 2 + (pitch - cell_w) / 4
        if annunciators_at == "top":
            strip_y, row_y = gy0 + pad, gy0 + 2 * pad + strip
        else:
            row_y, strip_y = gy0 + pad, gy0 + 2 * pad + digit_h
        t = thickness * cell_w
        gap = max(2.5, 0.15 * t)

        def cell_at(x0: float) -> dict[str, Any]:
            def put(points: Iterable[Point]) -> list[list[float]]:
                # Lean about the cell's baseline so the dp stays level with segment d.
                return [
                    [round(x0 + x + slant * (digit_h - y), 1), round(row_y + y, 1)]
                    for x, y in points
                ]

            w, h = cell_w, digit_h
            left, right, top, mid, bottom = t / 2, w - t / 2, t / 2, h / 2, h - t / 2
            s = 1.1 * t
            dp_x = w + 2 * gap + slant * t
            return {
                "a": put(_hbar(left + gap, right - gap, top, t)),
                "b": put(_vbar(right, top + gap, mid - gap, t)),
                "c": put(_vbar(right, mid + gap, bottom - gap, t)),
                "d": put(_hbar(left + gap, right - gap, bottom, t)),
                "e": put(_vbar(left, mid + gap, bottom - gap, t)),
                "f": put(_vbar(left, top + gap, mid - gap, t)),
                "g": put(_hbar(left + gap, right - gap, mid, t)),
                "dp": put([(dp_x, h - s), (dp_x + s, h - s), (dp_x + s, h), (dp_x, h)]),
            }

        icons = _ICONS
        units = sum(w for w, _ in icons.values())
        space = (gw - 2 * pad - units * strip) / (len(icons) + 1)
        x = gx0 + pad + space
        annunciators = {}
        for icon, (unit_w, polys) in icons.items():
            annunciators[icon] = [
                [[round(x + u * strip, 1), round(strip_y + v * strip, 1)] for u, v in poly]
                for poly in polys
            ]
            x += unit_w * strip + space
        return cls.model_validate(
            {
                "name": name or f"seven-segment-{digits}",
                "size": size,
                "glass": [[gx0, gy0], [gx1, gy0], [gx1, gy1], [gx0, gy1]],
                "digits": [cell_at(row_x + i * pitch) for i in range(digits)],
                "annunciators": annunciators,
            }
        )


def _hbar(x0: float, x1: float, y: float, t: float) -> list[Point]:
    h = t / 2
    return [(x0, y), (x0 + h, y - h), (x1 - h, y - h), (x1, y), (x1 - h, y + h), (x0 + h, y + h)]


def _vbar(x: float, y0: float, y1: float, t: float) -> list[Point]:
    h = t / 2
    return [(x, y0), (x + h, y0 + h), (x + h, y1 - h), (x, y1), (x - h, y1 - h), (x - h, y0 + h)]


def _stroke(x0: float, y0: float, x1: float, y1: float, w: float = 0.11) -> list[Point]:
    """A straight pen stroke of width ``w`` from (x0, y0) to (x1, y1), as a quadrilateral."""
    length = math.hypot(x1 - x0, y1 - y0)
    nx, ny = -(y1 - y0) / length * w / 2, (x1 - x0) / length * w / 2
    return [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)]


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[Point]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _ring(cx: float, cy: float, r_out: float, r_in: float, n: int = 10) -> list[list[Point]]:
    out = []
    for k in range(n):
        a0, a1 = 2 * math.pi * k / n, 2 * math.pi * (k + 1) / n
        out.append(
            [
                (cx + r_out * math.cos(a0), cy + r_out * math.sin(a0)),
                (cx + r_out * math.cos(a1), cy + r_out * math.sin(a1)),
                (cx + r_in * math.cos(a1), cy + r_in * math.sin(a1)),
                (cx + r_in * math.cos(a0), cy + r_in * math.sin(a0)),
            ]
        )
    return out


# Annunciator icons in units of the strip height: (width, polygons), y down.
_ICONS: dict[str, tuple[float, list[list[Point]]]] = {
    # A chain link broken in the middle, with crack marks above and below the break.
    "relay_open": (
        1.2,
        [
            [
                (0.05, 0.25),
                (0.5, 0.25),
                (0.5, 0.4),
                (0.22, 0.4),
                (0.22, 0.6),
                (0.5, 0.6),
                (0.5, 0.75),
                (0.05, 0.75),
            ],
            [
                (1.15, 0.25),
                (0.7, 0.25),
                (0.7, 0.4),
                (0.98, 0.4),
                (0.98, 0.6),
                (0.7, 0.6),
                (0.7, 0.75),
                (1.15, 0.75),
            ],
            _stroke(0.52, 0.02, 0.64, 0.17),
            _stroke(0.56, 0.83, 0.68, 0.98),
        ],
    ),
    # A battery outline with one low bar of charge.
    "credit_low": (
        1.2,
        [
            _rect(0.05, 0.2, 0.95, 0.33),
            _rect(0.05, 0.67, 0.95, 0.8),
            _rect(0.05, 0.2, 0.18, 0.8),
            _rect(0.82, 0.2, 0.95, 0.8),
            _rect(0.95, 0.38, 1.12, 0.62),
            _rect(0.27, 0.41, 0.4, 0.59),
        ],
    ),
    # An exclamation mark between two shock marks.
    "tamper": (
        1.0,
        [
            [(0.38, 0.04), (0.62, 0.04), (0.56, 0.64), (0.44, 0.64)],
            _rect(0.42, 0.76, 0.58, 0.95),
            _stroke(0.1, 0.2, 0.22, 0.5),
            _stroke(0.22, 0.5, 0.1, 0.8),
            _stroke(0.9, 0.2, 0.78, 0.5),
            _stroke(0.78, 0.5, 0.9, 0.8),
        ],
    ),
    # The legend "kWh" in pen strokes.
    "kwh": (
        1.9,
        [
            _stroke(0.1, 0.08, 0.1, 0.92),
            _stroke(0.12, 0.62, 0.42, 0.36),
            _stroke(0.2, 0.56, 0.44, 0.92),
            _stroke(0.56, 0.3, 0.7, 0.92),
            _stroke(0.7, 0.92, 0.84, 0.45),
            _stroke(0.84, 0.45, 0.98, 0.92),
            _stroke(0.98, 0.92, 1.12, 0.3),
            _stroke(1.3, 0.08, 1.3, 0.92),
            _stroke(1.3, 0.45, 1.62, 0.45),
            _stroke(1.62, 0.45, 1.62, 0.92),
        ],
    ),
    # A coin: a ring with a bar through the middle.
    "currency": (
        1.0,
        [*_ring(0.5, 0.5, 0.46, 0.32), _rect(0.44, 0.28, 0.56, 0.72)],
    ),
    # A padlock: the body and the shackle above it.
    "keypad_lock": (
        1.0,
        [
            _rect(0.18, 0.46, 0.82, 0.94),
            [
                (0.28, 0.46),
                (0.28, 0.2),
                (0.38, 0.06),
                (0.62, 0.06),
                (0.72, 0.2),
                (0.72, 0.46),
                (0.6, 0.46),
                (0.6, 0.25),
                (0.55, 0.19),
                (0.45, 0.19),
                (0.4, 0.25),
                (0.4, 0.46),
            ],
        ],
    ),
}


class _Flow(list):  # type: ignore[type-arg]
    """A YAML sequence written on one line."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


# --------------------------------------------------------------------------------------------
# Display state


@dataclass(frozen=True)
class DisplayState:
    """What the meter shows: the digit text and the lit annunciators (by name)."""

    text: str = ""
    annunciators: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "annunciators", frozenset(self.annunciators))

    def segments(self, layout: SegmentLayout) -> frozenset[str]:
        """Lit segment ids on ``layout``; ``ValueError`` for text or icons it cannot show."""
        unknown = self.annunciators - set(layout.annunciators)
        if unknown:
            raise ValueError(
                f"layout {layout.name!r} has no annunciator {', '.join(sorted(unknown))} "
                f"(it has: {', '.join(layout.annunciators)})"
            )
        cells = encode_text(self.text, layout.digit_count)
        lit = {f"d{i + 1}.{seg}" for i, cell in enumerate(cells) for seg in cell}
        return frozenset(lit | {f"ann.{name}" for name in self.annunciators})

    @classmethod
    def from_segments(
        cls, layout: SegmentLayout, lit: Iterable[str], *, unknown: str | None = None
    ) -> DisplayState:
        """The state that lit segment ids show (text decoded as :func:`decode_cells` does,
        leading and trailing blank cells stripped)."""
        lit = frozenset(lit)
        stray = lit - set(layout.segment_ids)
        if stray:
            raise ValueError(f"layout {layout.name!r} has no segment {', '.join(sorted(stray))}")
        cells = [
            {seg for seg in CELL_SEGMENTS if f"d{i + 1}.{seg}" in lit}
            for i in range(layout.digit_count)
        ]
        icons = {sid[4:] for sid in lit if sid.startswith("ann.")}
        return cls(decode_cells(cells, unknown=unknown).strip(), frozenset(icons))


# --------------------------------------------------------------------------------------------
# Rendering

GLASS_RGB = (172, 186, 160)
INK_RGB = (34, 44, 38)
GHOST_ALPHA = 0.1
"""How dark an unlit segment shows, as a fraction of a lit one (real LCDs show them faintly)."""


def _luma(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


# Every colour in a frame lies on the line from ink to glass, so a frame is rendered as one
# grey channel (its luminance) and coloured at the end: a third of the work, and the noise
# sigma is exactly in grey levels of the final frame.
_GLASS_Y, _INK_Y = _luma(GLASS_RGB), _luma(INK_RGB)
_GHOST_Y = _GLASS_Y + GHOST_ALPHA * (_INK_Y - _GLASS_Y)
_BEZEL_Y = 22.0
_COLOUR_LUT: tuple[list[int], ...] = tuple(
    [
        round(min(255.0, max(0.0, i + (v - _INK_Y) / (_GLASS_Y - _INK_Y) * (g - i))))
        for v in range(256)
    ]
    for i, g in zip(INK_RGB, GLASS_RGB, strict=True)
)


class NoiseLevel(NamedTuple):
    """Camera imperfections: sensor noise (sigma, grey levels), blur (radius, px), skew
    (largest glass-corner displacement, fraction of the image width)."""

    noise: float
    blur: float
    skew: float


NOISE_LEVELS: Mapping[str, NoiseLevel] = MappingProxyType(
    {
        "none": NoiseLevel(0.0, 0.0, 0.0),
        "low": NoiseLevel(4.0, 0.6, 0.01),
        "medium": NoiseLevel(10.0, 1.2, 0.025),
        "high": NoiseLevel(28.0, 2.5, 0.05),
    }
)

_MAX_SKEW = 0.1


@dataclass(frozen=True)
class FrameGeometry:
    """Where a layout landed in a frame.

    ``homography`` maps layout pixels to frame pixels (``[x', y', w'] = H @ [x, y, 1]``);
    ``glass_corners`` are the layout's glass corners in the frame (top-left, top-right,
    bottom-right, bottom-left), which is all a reader needs to recover ``homography``.
    """

    homography: tuple[tuple[float, float, float], ...]
    glass_corners: tuple[Point, Point, Point, Point]

    def map_point(self, x: float, y: float) -> Point:
        """Frame position of layout point ``(x, y)``."""
        (a, b, c), (d, e, f), (g, h, i) = self.homography
        w = g * x + h * y + i
        return ((a * x + b * y + c) / w, (d * x + e * y + f) / w)


def homography_from_corners(src: Sequence[Point], dst: Sequence[Point]) -> np.ndarray:
    """The 3x3 projective map taking the four points ``src`` to ``dst``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return np.append(h, 1.0).reshape(3, 3)


def _convex(quad: np.ndarray) -> bool:
    crosses = []
    for k in range(4):
        p, q, r = quad[k], quad[(k + 1) % 4], quad[(k + 2) % 4]
        crosses.append((q[0] - p[0]) * (r[1] - q[1]) - (q[1] - p[1]) * (r[0] - q[0]))
    return all(c > 0 for c in crosses) or all(c < 0 for c in crosses)


def _seed_check(seed: int | None) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")


def frame_geometry(layout: SegmentLayout, skew: float, seed: int | None = None) -> FrameGeometry:
    """The camera's perspective for ``(skew, seed)``: each glass corner moved by up to
    ``skew`` x image width in x and y (kept inside the frame). ``seed=None`` draws afresh."""
    if not 0 <= skew <= _MAX_SKEW:
        raise ValueError(f"skew must be within [0, {_MAX_SKEW}], got {skew!r}")
    _seed_check(seed)
    src = np.array(layout.glass, float)
    dst = src
    if skew:
        width, height = layout.size
        rng = np.random.default_rng(None if seed is None else (seed, 0))
        for _ in range(100):
            cand = src + rng.uniform(-1.0, 1.0, (4, 2)) * skew * width
            cand[:, 0] = cand[:, 0].clip(0.5, width - 1.5)
            cand[:, 1] = cand[:, 1].clip(0.5, height - 1.5)
            if _convex(cand):
                dst = cand
                break
    h = homography_from_corners(src, dst)
    return FrameGeometry(
        homography=tuple(tuple(float(v) for v in row) for row in h),
        glass_corners=tuple((float(x), float(y)) for x, y in dst),  # type: ignore[arg-type]
    )


def render_with_geometry(
    layout: SegmentLayout,
    lit: Iterable[str],
    *,
    noise: float = 0.0,
    blur: float = 0.0,
    skew: float = 0.0,
    seed: int | None = None,
    frame: int = 0,
) -> tuple[Image.Image, FrameGeometry]:
    """A camera frame (RGB) of ``layout`` with segments ``lit``, and where the layout landed.

    The perspective depends on ``(skew, seed)`` only, as a fixed camera's would; the sensor
    noise on ``(seed, frame)``, so successive frames of one camera differ only in noise.
    ``seed=None`` draws both afresh.
    """
    lit = frozenset(lit)
    raster = layout._raster
    stray = lit - raster.index.keys()
    if stray:
        raise ValueError(f"layout {layout.name!r} has no segment {', '.join(sorted(stray))}")
    if noise < 0 or blur < 0:
        raise ValueError(f"noise and blur must be >= 0, got noise={noise!r} blur={blur!r}")
    if frame < 0:
        raise ValueError(f"frame must be >= 0, got {frame!r}")

    levels = np.full(len(raster.ids) + 2, round(_GHOST_Y), np.uint8)
    levels[0], levels[1] = round(_BEZEL_Y), round(_GLASS_Y)
    levels[[raster.index[sid] for sid in lit]] = round(_INK_Y)
    image = Image.fromarray(np.take(levels, raster.compact), "L")

    geometry = frame_geometry(layout, skew, seed)
    if skew:
        # Pillow samples at pixel centres (i + 0.5); layout points sit on integer centres.
        shift, unshift = np.eye(3), np.eye(3)
        shift[:2, 2], unshift[:2, 2] = 0.5, -0.5
        inverse = shift @ np.linalg.inv(np.array(geometry.homography)) @ unshift
        inverse /= inverse[2, 2]
        image = image.transform(
            image.size,
            Image.Transform.PERSPECTIVE,
            tuple(inverse.ravel()[:8]),
            resample=Image.Resampling.BILINEAR,
            fillcolor=round(_BEZEL_Y),
        )
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        rng = np.random.default_rng(None if seed is None else (seed, 1, frame))
        pixels = rng.standard_normal((image.height, image.width), np.float32)
        pixels *= np.float32(noise)
        pixels += np.asarray(image, np.float32) + np.float32(0.5)
        image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "L")
    image = Image.merge("RGB", [image.point(lut) for lut in _COLOUR_LUT])
    return image, geometry


def render(
    layout: SegmentLayout,
    lit: Iterable[str],
    *,
    noise: float = 0.0,
    blur: float = 0.0,
    skew: float = 0.0,
    seed: int | None = None,
    frame: int = 0,
) -> Image.Image:
    """A camera frame of ``layout`` with segments ``lit`` (see :func:`render_with_geometry`)."""
    return render_with_geometry(
        layout, lit, noise=noise, blur=blur, skew=skew, seed=seed, frame=frame
    )[0]


def render_png(
    layout: SegmentLayout,
    lit: Iterable[str],
    *,
    noise: float = 0.0,
    blur: float = 0.0,
    skew: float = 0.0,
    seed: int | None = None,
    frame: int = 0,
) -> bytes:
    """:func:`render` encoded as PNG (fast compression: frames are served, not archived)."""
    buf = io.BytesIO()
    image = render(layout, lit, noise=noise, blur=blur, skew=skew, seed=seed, frame=frame)
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
