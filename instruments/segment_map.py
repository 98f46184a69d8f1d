"""Segment maps: where each LCD segment lies in a camera frame, loaded from YAML.

A segment map describes one meter model's display as one camera sees it: the frame ``size``,
the four ``glass`` corners (top-left, top-right, bottom-right, bottom-left), the seven-segment
``digits`` cells (leftmost first, bars ``a``-``g`` and the decimal point ``dp``) and named
``annunciators``. Every segment is a polygon ``[[x, y], ...]`` or a list of polygons (their
union), in pixels with the origin top left and pixel ``(i, j)`` centred on the integer point.

It is the YAML schema SimLab's camera serves as ``/layout.yaml`` and ships as
``dut/profiles/lcd_*.yaml``, read here independently: a bench must be able to load the map
of a real meter without SimLab. Segment ids: ``d1.a`` … ``dN.dp`` for the digit cells,
``ann.<name>`` for annunciators.

A map in *layout* pixels (a drawing of the display, not calibrated to a camera) becomes a map
in *frame* pixels through the homography that takes its glass corners to where the camera sees
them: :func:`homography` and :meth:`SegmentMap.warped`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageDraw

from sts.schema import line_of

Point = tuple[float, float]
Polygon = tuple[Point, ...]
Shape = tuple[Polygon, ...]
Quad = tuple[Point, Point, Point, Point]

CELL_SEGMENTS: tuple[str, ...] = ("a", "b", "c", "d", "e", "f", "g", "dp")
"""The parts of one digit cell: bars a (top) clockwise to f, g (middle), the decimal point."""

_KEYS = ("name", "size", "glass", "digits", "annunciators")
_ICON_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SegmentMapError(ValueError):
    """A segment map that cannot be used; the message names the file, the key and its line."""


class _Bad(Exception):
    """A check failure at a key path, turned into a :class:`SegmentMapError` by the loader."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def key_path(loc: Sequence[str | int]) -> str:
    """``("digits", 2, "dp")`` -> ``digits[2].dp``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass(frozen=True)
class SegmentMap:
    """One display's segments in pixels (see the module docstring for the YAML schema).

    Construct with :meth:`load`, :meth:`parse_yaml` or :meth:`from_dict`, which check it:
    every point lies in the frame, every segment covers a pixel inside the glass, no two
    segments share a pixel.
    """

    name: str
    size: tuple[int, int]
    glass: Quad
    digits: tuple[Mapping[str, Shape], ...]
    annunciators: Mapping[str, Shape]
    source: str = field(default="<segment map>", compare=False)

    # -- views -------------------------------------------------------------------------------

    @property
    def digit_count(self) -> int:
        return len(self.digits)

    @property
    def segment_ids(self) -> tuple[str, ...]:
        """Every segment id: digit cells left to right (a-g, dp), then annunciators."""
        return tuple(self.shapes())

    def shapes(self) -> dict[str, Shape]:
        """Segment id -> its polygons, in :attr:`segment_ids` order."""
        out = {
            f"d{i + 1}.{seg}": cell[seg]
            for i, cell in enumerate(self.digits)
            for seg in CELL_SEGMENTS
        }
        out.update({f"ann.{name}": shape for name, shape in self.annunciators.items()})
        return out

    def warped(
        self, matrix: np.ndarray, size: tuple[int, int] | None = None, *, source: str = ""
    ) -> SegmentMap:
        """This map moved through the 3x3 homography ``matrix`` into a frame of ``size``
        (default: the same size); checked like a loaded map."""

        def move(poly: Sequence[Point]) -> list[list[float]]:
            return [[round(x, 2), round(y, 2)] for x, y in map_points(matrix, poly)]

        def shape(s: Shape) -> list[list[list[float]]]:
            return [move(p) for p in s]

        doc = {
            "name": self.name,
            "size": list(size or self.size),
            "glass": move(self.glass),
            "digits": [{seg: shape(cell[seg]) for seg in CELL_SEGMENTS} for cell in self.digits],
            "annunciators": {n: shape(s) for n, s in self.annunciators.items()},
        }
        return SegmentMap.from_dict(doc, source=source or f"{self.source} (warped)")

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> SegmentMap:
        """Read and check a segment map file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SegmentMapError(f"{path}: cannot read segment map: {reason}") from exc
        return cls.parse_yaml(text, source=str(path))

    @classmethod
    def parse_yaml(cls, text: str, *, source: str = "<segment map>") -> SegmentMap:
        """Parse segment map YAML; ``source`` names it in error messages."""
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}:" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise SegmentMapError(f"{source}:{where} invalid YAML: {problem}") from exc
        finally:
            loader.dispose()
        try:
            return cls._checked(data, source)
        except _Bad as bad:
            line = line_of(node, tuple(bad.loc)) or 1
            raise SegmentMapError(
                f"{source}: {key_path(bad.loc)} (line {line}): {bad.message}"
            ) from None

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<segment map>") -> SegmentMap:
        """Check a map given as plain data (the YAML document's structure)."""
        try:
            return cls._checked(data, source)
        except _Bad as bad:
            raise SegmentMapError(f"{source}: {key_path(bad.loc)}: {bad.message}") from None

    @classmethod
    def _checked(cls, data: Any, source: str) -> SegmentMap:
        if not isinstance(data, dict):
            raise _Bad((), f"a segment map is a mapping with keys {', '.join(_KEYS)}")
        for key in data:
            if key not in _KEYS:
                raise _Bad((str(key),), f"unknown key (allowed: {', '.join(_KEYS)})")
        for key in _KEYS:
            if key not in data:
                raise _Bad((key,), "required key is missing")
        name = data["name"]
        if not isinstance(name, str) or not name.strip():
            raise _Bad(("name",), "expected a non-empty text")
        size = _size(data["size"])
        glass = _quad(data["glass"])
        cells = data["digits"]
        if not isinstance(cells, list) or not cells:
            raise _Bad(("digits",), "expected a list of digit cells (at least one)")
        digits = []
        for i, cell in enumerate(cells):
            if not isinstance(cell, dict):
                raise _Bad(
                    ("digits", i), f"expected a mapping with keys {', '.join(CELL_SEGMENTS)}"
                )
            for key in cell:
                if key not in CELL_SEGMENTS:
                    raise _Bad(("digits", i, str(key)), "not a segment of a digit cell")
            parts = {}
            for seg in CELL_SEGMENTS:
                if seg not in cell:
                    raise _Bad(("digits", i, seg), "required segment is missing")
                parts[seg] = _shape(cell[seg], ("digits", i, seg))
            digits.append(MappingProxyType(parts))
        icons = data["annunciators"]
        if icons is None:
            icons = {}
        if not isinstance(icons, dict):
            raise _Bad(("annunciators",), "expected a mapping of icon name to shape")
        annunciators = {}
        for icon, shape in icons.items():
            if not isinstance(icon, str) or not _ICON_NAME.fullmatch(icon):
                raise _Bad(("annunciators", str(icon)), "icon names are lower_snake_case")
            annunciators[icon] = _shape(shape, ("annunciators", icon))
        smap = cls(
            name=name,
            size=size,
            glass=glass,
            digits=tuple(digits),
            annunciators=MappingProxyType(annunciators),
            source=source,
        )
        _check_geometry(smap)
        return smap

    # -- writing -----------------------------------------------------------------------------

    def to_yaml(self, header: str = "") -> str:
        """The map as YAML that :meth:`parse_yaml` (and SimLab's layout loader) read back;
        ``header`` becomes leading comment lines."""

        def shape(s: Shape) -> Any:
            polygons = [_Flow(_Flow(p) for p in poly) for poly in s]
            return polygons[0] if len(polygons) == 1 else polygons

        doc = {
            "name": self.name,
            "size": _Flow(self.size),
            "glass": _Flow(_Flow(p) for p in self.glass),
            "digits": [{seg: shape(cell[seg]) for seg in CELL_SEGMENTS} for cell in self.digits],
            "annunciators": {n: shape(s) for n, s in self.annunciators.items()},
        }
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        return comment + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)


# -- parsing helpers ---------------------------------------------------------------------------


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _point(v: object) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_number(c) for c in v)


def _size(value: object) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2):
        raise _Bad(("size",), "expected [width, height] in pixels")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise _Bad(("size", i), f"expected a positive whole number of pixels, got {v!r}")
    return int(value[0]), int(value[1])


def _polygon(value: object, loc: tuple[str | int, ...], min_points: int = 3) -> Polygon:
    if not isinstance(value, list) or len(value) < min_points:
        raise _Bad(loc, f"a polygon needs at least {min_points} [x, y] points")
    for j, p in enumerate(value):
        if not _point(p):
            raise _Bad(loc, f"point {j}: expected [x, y] numbers, got {p!r}")
    return tuple((float(p[0]), float(p[1])) for p in value)


def _shape(value: object, loc: tuple[str | int, ...]) -> Shape:
    if isinstance(value, list) and value and _point(value[0]):
        return (_polygon(value, loc),)
    if not isinstance(value, list) or not value:
        raise _Bad(loc, "expected a polygon [[x, y], ...] or a list of polygons")
    return tuple(_polygon(p, loc) for p in value)


def _quad(value: object) -> Quad:
    poly = _polygon(value, ("glass",), min_points=4)
    if len(poly) != 4:
        raise _Bad(("glass",), "expected 4 corners: top-left, top-right, bottom-right, bottom-left")
    if not clockwise_convex(poly):
        raise _Bad(
            ("glass",),
            "the corners must go top-left, top-right, bottom-right, bottom-left around a "
            "convex quadrilateral",
        )
    return poly  # type: ignore[return-value]


def clockwise_convex(quad: Sequence[Point]) -> bool:
    """True for four corners going clockwise on screen (y down) around a convex shape."""
    for k in range(4):
        (px, py), (qx, qy), (rx, ry) = quad[k], quad[(k + 1) % 4], quad[(k + 2) % 4]
        if (qx - px) * (ry - qy) - (qy - py) * (rx - qx) <= 0:
            return False
    return True


def _check_geometry(smap: SegmentMap) -> None:
    width, height = smap.size
    located: list[tuple[tuple[str | int, ...], Shape]] = [(("glass",), (smap.glass,))]
    located += [
        (("digits", i, seg), cell[seg])
        for i, cell in enumerate(smap.digits)
        for seg in CELL_SEGMENTS
    ]
    located += [(("annunciators", n), s) for n, s in smap.annunciators.items()]
    for loc, shape in located:
        for poly in shape:
            for x, y in poly:
                if not (0 <= x <= width and 0 <= y <= height):
                    raise _Bad(loc, f"point ({x:g}, {y:g}) lies outside the {width}x{height} frame")
    label = np.zeros((height, width), np.int32)
    top, left, mask = shape_mask((smap.glass,), smap.size)
    if not mask.any():
        raise _Bad(("glass",), "covers no pixel")
    label[top : top + mask.shape[0], left : left + mask.shape[1]][mask] = 1
    for k, (loc, shape) in enumerate(located[1:]):
        top, left, mask = shape_mask(shape, smap.size)
        region = label[top : top + mask.shape[0], left : left + mask.shape[1]]
        under = region[mask]
        if under.size == 0:
            raise _Bad(loc, "covers no pixel")
        if (under == 0).any():
            raise _Bad(loc, "extends beyond the glass")
        if (under >= 2).any():
            raise _Bad(loc, f"overlaps {key_path(located[int(under.max()) - 1][0])}")
        region[mask] = k + 2


# libyaml when present: a map is thousands of numbers, ten times faster to read in C.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Flow(list):  # type: ignore[type-arg]
    """A YAML sequence written on one line."""


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


# -- geometry ----------------------------------------------------------------------------------


def shape_mask(
    shape: Sequence[Sequence[Point]], size: tuple[int, int]
) -> tuple[int, int, np.ndarray]:
    """Rasterise a shape into a frame of ``size``: ``(top, left, mask)`` over its clipped
    bounding box (pixels whose centre the polygons cover, edges included)."""
    width, height = size
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


def homography(src: Sequence[Point], dst: Sequence[Point]) -> np.ndarray:
    """The 3x3 projective map taking the four points ``src`` to ``dst`` (``ValueError`` when
    three of them are in a line)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    try:
        h = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    except np.linalg.LinAlgError:
        raise ValueError("the corners are degenerate (three in a line)") from None
    return np.append(h, 1.0).reshape(3, 3)


def map_points(matrix: np.ndarray, points: Sequence[Point]) -> list[Point]:
    """``points`` moved through the homography ``matrix``."""
    pts = np.hstack([np.asarray(points, float), np.ones((len(points), 1))]) @ np.asarray(matrix).T
    xy = pts[:, :2] / pts[:, 2:3]
    return [(float(x), float(y)) for x, y in xy]
