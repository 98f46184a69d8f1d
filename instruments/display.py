"""The camera display reader: what a meter's LCD shows, read from camera frames.

A camera looks at the meter's LCD; a calibrated segment map
(:mod:`instruments.segment_map`) says where every segment lies in its frames. For each frame
the reader takes the mean grey level inside every segment polygon, compares it with the bare
glass right around that segment, tells lit from unlit segments with a split estimated from
that frame alone, decodes the digit cells with the seven-segment font and names the lit
annunciators. A reading is accepted only after K consecutive frames decode to the same thing,
each with enough confidence; a display that cannot be read that way within the time budget
is a fault (:class:`~instruments.base.InstrumentTimeout`), never a guess.

Only what a real camera offers is used: frames from an HTTP snapshot URL (an IP camera, or
SimLab's camera) or from an image file that a capture tool keeps overwriting, plus the segment
map file. :func:`calibrate` makes that map from one frame showing every segment.

A frame is refused (never read) when the glass is seen away from where the map has it (a
bumped camera), when a segment is brighter than the glass around it (a map that does not
fit), when lit and unlit segments are too close to tell apart, or when a digit cell shows no
character. One case no single frame can settle: a display showing *every* segment whose ink
has faded to the level of unlit ghosts (contrast below about 0.12) looks blank, and reads so;
:func:`calibrate` refuses a view with that little contrast.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
from PIL import Image, ImageFilter

from instruments.base import (
    Driver,
    Identity,
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    deadline,
    register,
)
from instruments.roles import DisplayReading
from instruments.segment_map import (
    CELL_SEGMENTS,
    Point,
    Quad,
    SegmentMap,
    SegmentMapError,
    clockwise_convex,
    homography,
    shape_mask,
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
    "P": "abefg",
    "r": "eg",
    "t": "defg",
    "U": "bcdef",
    "u": "cde",
    "y": "bcdfg",
}

SEVEN_SEGMENT_FONT: Mapping[str, frozenset[str]] = MappingProxyType(
    {ch: frozenset(segs) for ch, segs in _GLYPHS.items()}
)
"""Lit bars of every character the reader recognises. ``O`` and ``S`` share the glyphs of
``0`` and ``5`` and read as those; ``.`` is the decimal point of the cell before it."""

_CHAR_OF: dict[frozenset[str], str] = {segs: ch for ch, segs in SEVEN_SEGMENT_FONT.items()}


def decode_cells(cells: Sequence[frozenset[str]]) -> str:
    """The text digit cells show (blank cells as spaces, a lit dp as ``.``), leading and
    trailing blanks stripped; ``ValueError`` naming the first cell that shows no character."""
    out = []
    for index, cell in enumerate(cells):
        ch = _CHAR_OF.get(cell - {"dp"})
        if ch is None:
            lit = "".join(sorted(cell - {"dp"}))
            raise ValueError(f"cell {index + 1}: segments {lit!r} show no known character")
        out.append(ch + ("." if "dp" in cell else ""))
    return "".join(out).strip()


# --------------------------------------------------------------------------------------------
# Telling lit segments from unlit ones
#
# Each segment's *darkness* is 1 - (its mean grey) / (the mean grey of the bare glass in a ring
# around it). Dividing by the local glass level cancels uneven lighting and vignetting, which a
# real bench camera always has; the ring keeps clear of every segment so ink does not leak in.
# Bare glass is 0, an unlit segment shows a faint ghost (a few percent), ink shows tens of
# percent. The split between lit and unlit is estimated from the frame's own segments: the
# two-class (Otsu) threshold over their darkness, accepted only when the classes are really
# apart (MIN_CONTRAST) and the unlit class sits nearer the glass than the lit one. The threshold
# is halfway between the two class medians; a segment's margin from it, in units of half the
# gap and less two standard errors of its own mean, is its confidence. A frame is as confident
# as its least confident segment, so one doubtful segment makes the whole frame doubtful.

MIN_CONTRAST = 0.1
"""Smallest darkness gap between lit and unlit segments (fraction of the glass level) that
counts as a readable display; below it, lit and unlit cannot be told apart."""
_ALL_LIT = 0.3  # one class only: median darkness at least this means every segment is lit
_MAX_GHOST = 0.12  # ... at most this (an unlit segment's ghost) means none is
_NOT_BLANK = 0.03  # darkness differences beyond this (and noise) are not ghosts' variation
# Distances in pixels for a display whose bars are about _BAR pixels thick; maps drawn at a
# larger scale (a high-resolution camera close up) scale them, as blur scales with the image.
_BAR = 9.0
_CORE_ERODE = 1  # pixels trimmed off each segment: blur and a slight misfit stay out
_RING = (4, 10)  # the glass ring around a segment: from 4 to 10 pixels out
_MIN_RING = 20
_DARK_GLASS = 8.0  # a glass level below this (grey levels) is no lit display
_BRIGHTER = 0.05  # a segment this much brighter than its glass (beyond noise) is a misfit


def _box(mask: np.ndarray, r: int) -> np.ndarray:
    """Number of True pixels in the (2r+1)^2 square around each pixel."""
    k = 2 * r + 1
    pad = np.pad(mask.astype(np.int32), ((r + 1, r), (r + 1, r)))
    c = pad.cumsum(0).cumsum(1)
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    return _box(mask, r) > 0 if r > 0 else mask.copy()


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    return _box(mask, r) == (2 * r + 1) ** 2 if r > 0 else mask.copy()


@dataclass(frozen=True)
class SegmentLevels:
    """Per-segment measurements of one frame, in :attr:`SegmentMap.segment_ids` order."""

    ids: tuple[str, ...]
    darkness: np.ndarray  # 1 - segment mean / local glass level
    sigma: np.ndarray  # standard error of darkness (pixel noise)
    glass: np.ndarray  # local glass level (grey levels)


class _Sampler:
    """Pixel indices of every segment's core and of the glass ring around it, for one map in
    frame pixels; measuring a frame is then a few indexed sums."""

    def __init__(self, smap: SegmentMap) -> None:
        width, height = smap.size
        self.size = smap.size
        self.ids = smap.segment_ids
        masks = [shape_mask(shape, smap.size) for shape in smap.shapes().values()]
        # A bar's thickness is its area over its length; the median segment is a bar.
        bar = float(np.median([m.sum() / max(m.shape) for _, _, m in masks if m.size]))
        scale = max(1.0, bar / _BAR)
        erode, ring_in, r_out = (max(1, round(v * scale)) for v in (_CORE_ERODE, *_RING))
        inked = np.zeros((height, width), bool)
        for top, left, m in masks:
            inked[top : top + m.shape[0], left : left + m.shape[1]] |= m
        top, left, m = shape_mask((smap.glass,), smap.size)
        glass = np.zeros((height, width), bool)
        glass[top : top + m.shape[0], left : left + m.shape[1]] = m
        bare = _erode(glass, 2) & ~_dilate(inked, ring_in)
        self.bare = np.flatnonzero(bare)
        core_idx, core_lab, ring_idx, ring_lab = [], [], [], []
        self.no_ring: list[int] = []
        for k, (top, left, m) in enumerate(masks):
            core = _erode(m, erode)
            if core.sum() < max(6, 0.3 * m.sum()):
                core = m
            ys, xs = np.nonzero(core)
            core_idx.append((ys + top) * width + xs + left)
            core_lab.append(np.full(len(ys), k))
            t0, l0 = max(0, top - r_out), max(0, left - r_out)
            b0 = min(height, top + m.shape[0] + r_out)
            r0 = min(width, left + m.shape[1] + r_out)
            local = np.zeros((b0 - t0, r0 - l0), bool)
            local[top - t0 : top - t0 + m.shape[0], left - l0 : left - l0 + m.shape[1]] = m
            ring = _dilate(local, r_out) & bare[t0:b0, l0:r0]
            ys, xs = np.nonzero(ring)
            if len(ys) < _MIN_RING:
                self.no_ring.append(k)
                continue
            ring_idx.append((ys + t0) * width + xs + l0)
            ring_lab.append(np.full(len(ys), k))
        n = len(self.ids)
        self.core_idx = np.concatenate(core_idx)
        self.core_lab = np.concatenate(core_lab)
        self.core_n = np.bincount(self.core_lab, minlength=n).astype(float)
        self.ring_idx = np.concatenate(ring_idx) if ring_idx else np.zeros(0, np.int64)
        self.ring_lab = np.concatenate(ring_lab) if ring_lab else np.zeros(0, np.int64)
        self.ring_n = np.bincount(self.ring_lab, minlength=n).astype(float)
        if self.no_ring and len(self.bare) < _MIN_RING:
            raise SegmentMapError(
                f"{smap.source}: the segments leave no bare glass to compare them with"
            )

    def measure(self, grey: np.ndarray) -> SegmentLevels:
        flat = grey.ravel()
        n = len(self.ids)
        vals = flat[self.core_idx].astype(float)
        sums = np.bincount(self.core_lab, weights=vals, minlength=n)
        squares = np.bincount(self.core_lab, weights=vals * vals, minlength=n)
        mean = sums / self.core_n
        var = np.maximum(squares / self.core_n - mean * mean, 0.0)
        ring = np.bincount(self.ring_lab, weights=flat[self.ring_idx], minlength=n)
        glass = ring / np.maximum(self.ring_n, 1.0)
        if self.no_ring:
            glass[self.no_ring] = float(np.median(flat[self.bare]))
        safe = np.maximum(glass, 1e-6)
        return SegmentLevels(
            ids=self.ids,
            darkness=1.0 - mean / safe,
            sigma=np.sqrt(var / self.core_n) / safe,
            glass=glass,
        )


_SAMPLERS: list[tuple[SegmentMap, _Sampler]] = []
_SAMPLERS_LOCK = threading.Lock()


def _sampler_of(smap: SegmentMap) -> _Sampler:
    """The sampler of ``smap``, shared by readers given the same map object (building one
    rasterises every segment)."""
    with _SAMPLERS_LOCK:
        for known, sampler in _SAMPLERS:
            if known is smap:
                return sampler
    sampler = _Sampler(smap)
    with _SAMPLERS_LOCK:
        _SAMPLERS.insert(0, (smap, sampler))
        del _SAMPLERS[8:]
    return sampler


@dataclass(frozen=True)
class _Split:
    unlit: float  # darkness level of unlit segments
    lit: float  # ... of lit ones
    problem: str = ""


def _split(darkness: np.ndarray, sigma: np.ndarray) -> _Split:
    """Where lit and unlit segments sit on the darkness scale in this frame (``sigma``: the
    standard error of each segment's darkness)."""
    values = np.sort(darkness)
    n = len(values)
    if n >= 2:
        cum = np.cumsum(values)
        i = np.arange(1, n)
        mu0 = cum[:-1] / i
        mu1 = (cum[-1] - cum[:-1]) / (n - i)
        between = i * (n - i) * (mu1 - mu0) ** 2
        cut = int(np.argmax(between)) + 1
        unlit, lit = float(np.median(values[:cut])), float(np.median(values[cut:]))
        gap = lit - unlit
        if unlit < gap:
            if gap >= MIN_CONTRAST:
                return _Split(unlit, lit)
            if gap > max(6 * float(np.median(sigma)), _NOT_BLANK):
                # Two populations beyond noise, yet too close to tell apart reliably: a faint
                # display (glare, exposure), not a blank one.
                return _Split(
                    0.0,
                    0.0,
                    f"too little contrast between lit and unlit segments ({gap:.2f}, needs "
                    f"{MIN_CONTRAST:g}): check the lighting and exposure",
                )
    # One class only: every segment lit (a display test) or none (a blank display). With no
    # second class to compare with, only clear cases count: ink well above any ghosting, or
    # ghosts no darker than ghosts get; anything between could be either.
    middle = float(np.median(values))
    if middle >= _ALL_LIT:
        return _Split(_MAX_GHOST, middle)
    if middle <= _MAX_GHOST:
        return _Split(middle, _ALL_LIT)
    return _Split(
        0.0,
        0.0,
        f"lit and unlit segments cannot be told apart (darkness {values[0]:.2f} to "
        f"{values[-1]:.2f}, median {middle:.2f})",
    )


@dataclass(frozen=True)
class FrameDecode:
    """What one frame shows, or why it cannot be read.

    ``text`` is ``None`` when the frame is unreadable (``problem`` says why). ``confidence``
    (0..1) is that of the least certain segment, named by ``weakest``.
    """

    text: str | None
    annunciators: frozenset[str] = frozenset()
    confidence: float = 0.0
    weakest: str = ""
    lit: frozenset[str] = frozenset()
    problem: str = ""

    @property
    def readable(self) -> bool:
        return self.text is not None

    def agrees(self, other: FrameDecode) -> bool:
        return self.text == other.text and self.annunciators == other.annunciators

    def describe(self) -> str:
        if self.text is None:
            return f"unreadable: {self.problem}"
        icons = ",".join(sorted(self.annunciators)) or "-"
        return (
            f"{self.text!r} icons {icons} confidence {self.confidence:.2f} (weakest {self.weakest})"
        )


class FrameMismatch(ValueError):
    """The frame cannot be for this segment map (its size differs)."""


class SegmentDecoder:
    """Reads single frames with one segment map: the pure core of the display reader.

    With ``locate_glass`` the map may be in layout pixels (any size): each frame's glass
    corners are found (:func:`find_glass`) and the map is warped onto them. Otherwise the map
    is in frame pixels and frames must be its size.
    """

    def __init__(self, segment_map: SegmentMap, *, locate_glass: bool = False) -> None:
        self.segment_map = segment_map
        self.locate_glass = locate_glass
        self._corners: np.ndarray | None = None  # where the glass was last found
        self._sampler: _Sampler | None = None
        self._sampler_corners: np.ndarray | None = None
        if not locate_glass:
            self._sampler = _sampler_of(segment_map)
        self._digits = segment_map.digit_count
        self._icons = tuple(segment_map.annunciators)

    def levels(self, image: Image.Image) -> SegmentLevels:
        """Per-segment darkness of ``image`` (``ValueError`` when the glass is not found,
        :class:`FrameMismatch` for a frame of the wrong size)."""
        grey = grey_levels(image)
        return self._sampler_for(grey).measure(grey)

    def decode(self, image: Image.Image) -> FrameDecode:
        """What ``image`` shows; an unreadable frame is a :class:`FrameDecode` with a
        ``problem``. Raises :class:`FrameMismatch` only for a frame of the wrong size."""
        try:
            levels = self.levels(image)
        except FrameMismatch:
            raise
        except ValueError as exc:
            return FrameDecode(None, problem=str(exc))
        dark_glass = levels.glass < _DARK_GLASS
        if dark_glass.any():
            sid = levels.ids[int(np.argmax(dark_glass))]
            return FrameDecode(
                None,
                problem=f"the glass around {sid} is dark (level {levels.glass.min():.0f}): "
                "is the display in view and lit?",
            )
        # An LCD segment is never brighter than the glass around it; one that is means the
        # map is off (its ring lies on ink or bezel), and nothing in this frame can be trusted.
        brighter = levels.darkness + _BRIGHTER + 3 * levels.sigma
        if brighter.min() < 0:
            k = int(np.argmin(brighter))
            return FrameDecode(
                None,
                problem=f"{levels.ids[k]} is brighter than the glass around it (darkness "
                f"{levels.darkness[k]:.2f}): the segment map does not fit this frame",
            )
        split = _split(levels.darkness, levels.sigma)
        if split.problem:
            return FrameDecode(None, problem=split.problem)
        threshold = (split.unlit + split.lit) / 2
        half = (split.lit - split.unlit) / 2
        lit_mask = levels.darkness > threshold
        margin = (np.abs(levels.darkness - threshold) - 2 * levels.sigma) / half
        conf = np.clip(margin, 0.0, 1.0)
        weakest = int(np.argmin(conf))
        lit = frozenset(sid for sid, on in zip(levels.ids, lit_mask, strict=True) if on)
        base = {
            "confidence": float(conf[weakest]),
            "weakest": levels.ids[weakest],
            "lit": lit,
        }
        cells = [
            frozenset(seg for seg in CELL_SEGMENTS if f"d{i + 1}.{seg}" in lit)
            for i in range(self._digits)
        ]
        try:
            text = decode_cells(cells)
        except ValueError as exc:
            return FrameDecode(None, problem=str(exc), **base)  # type: ignore[arg-type]
        icons = frozenset(name for name in self._icons if f"ann.{name}" in lit)
        return FrameDecode(text, icons, **base)  # type: ignore[arg-type]

    def _sampler_for(self, grey: np.ndarray) -> _Sampler:
        height, width = grey.shape
        if not self.locate_glass:
            assert self._sampler is not None
            if (width, height) != self.segment_map.size:
                mw, mh = self.segment_map.size
                raise FrameMismatch(
                    f"the frame is {width}x{height} pixels but the segment map "
                    f"{self.segment_map.source} is for {mw}x{mh}"
                )
            self._check_not_moved(grey)
            return self._sampler
        try:
            corners = np.array(find_glass(grey, near=self._corners))
        except ValueError:
            self._corners = None
            raise
        check_glass_shape(corners, self.segment_map.glass)
        self._corners = corners
        cached = self._sampler_corners
        if (
            self._sampler is None
            or self._sampler.size != (width, height)
            or cached is None
            or np.abs(cached - corners).max() > _TRACK_TOLERANCE
        ):
            matrix = homography(self.segment_map.glass, [tuple(c) for c in corners])
            try:
                warped = self.segment_map.warped(matrix, (width, height))
            except SegmentMapError as exc:
                raise ValueError(f"the glass found does not fit the segment map: {exc}") from None
            self._sampler = _Sampler(warped)
            self._sampler_corners = corners
        return self._sampler

    def _check_not_moved(self, grey: np.ndarray) -> None:
        """``ValueError`` when the glass is clearly visible somewhere else than the map says
        (a bumped camera or meter). A glass whose edges do not show cannot be checked."""
        expected = np.array(self.segment_map.glass)
        try:
            found = np.array(
                find_glass(grey, near=self._corners if self._corners is not None else expected)
            )
        except ValueError:
            return
        self._corners = found
        off = np.hypot(*(found - expected).T)
        k = int(np.argmax(off))
        if off[k] > _MOVED_TOLERANCE:
            raise ValueError(
                f"the display moved in the camera's view: the glass {_CORNERS[k]} corner is "
                f"{off[k]:.1f} px from where the segment map has it; recalibrate"
            )


_TRACK_TOLERANCE = 0.75
"""Glass corner movement (pixels) under which a located glass reuses the last warped map."""
_MOVED_TOLERANCE = 3.0
"""Glass corner offset (pixels) from a frame-pixel map beyond which the view has moved."""


def grey_levels(image: Image.Image) -> np.ndarray:
    """The frame's luminance as float32 grey levels 0..255."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image, np.float32) * np.float32(255 / 65535)
    return np.asarray(image.convert("L"), np.float32)


# --------------------------------------------------------------------------------------------
# Finding the display glass in a frame
#
# The glass is the largest bright region: a convex quadrilateral, much brighter than the bezel
# around it, roughly upright (sides within about 30 degrees of the frame axes). Its corners
# are found in two steps: rough corners are the extreme points of the largest bright
# connected region of a box-smoothed frame along the two diagonals; then each side is refined
# by sampling the smoothed frame across it at many points along its middle three quarters,
# taking the sub-pixel position where the profile crosses halfway between its inner (glass)
# and outer (bezel) level, and fitting a straight line (outliers dropped). The corners are the
# intersections of adjacent sides, so ink near a corner or a rounded bezel does not move them.


def _smoothing(width: int, height: int) -> int:
    return max(2, min(width, height) // 100)  # box half-width


def _box_mean(grey: np.ndarray, r: int) -> np.ndarray:
    """The frame smoothed by a (2r+1)^2 box (edges repeated), as float32."""
    image = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8), "L")
    return np.asarray(image.filter(ImageFilter.BoxBlur(r)), np.float32)


def _otsu(smooth: np.ndarray) -> tuple[float, float, float]:
    """The two-class threshold of grey levels, and the mean level of each class (from a
    subsample: the levels are what matters, not every pixel)."""
    hist = np.bincount(smooth[::3, ::3].astype(np.uint8).ravel(), minlength=256)
    centres = np.arange(256) + 0.5
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    mu0 = s0 / np.maximum(w0, 1)
    mu1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    k = int(np.argmax(between))
    if w0[k] == 0 or w1[k] == 0:
        level = float(np.mean(smooth))
        return level, level, level
    return float(k + 1), float(mu0[k]), float(mu1[k])


def _largest_region(bright: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs ``(row, x0, x1)`` (x1 exclusive) of the largest 4-connected True region."""
    height, width = bright.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = bright
    step = np.diff(padded, axis=1)
    rows, x0 = np.nonzero(step == 1)
    _, x1 = np.nonzero(step == -1)
    if len(rows) == 0:
        return rows, x0, x1
    bounds = np.searchsorted(rows, np.arange(height + 1))
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    starts, ends = x0.tolist(), x1.tolist()
    for y in range(1, height):
        i, i_end, j, j_end = int(bounds[y - 1]), int(bounds[y]), int(bounds[y]), int(bounds[y + 1])
        while i < i_end and j < j_end:
            if starts[i] < ends[j] and starts[j] < ends[i]:
                a, b = root(i), root(j)
                if a != b:
                    parent[b] = a
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    roots = np.array([root(i) for i in range(len(rows))])
    area = np.bincount(roots, weights=x1 - x0)
    keep = roots == int(np.argmax(area))
    return rows[keep], x0[keep], x1[keep]


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``img`` at sub-pixel points; outside the frame, the nearest edge pixel's value."""
    height, width = img.shape
    xc, yc = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
    x0 = np.minimum(np.floor(xc).astype(int), width - 2)
    y0 = np.minimum(np.floor(yc).astype(int), height - 2)
    fx, fy = xc - x0, yc - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


_SIDES = ("top", "right", "bottom", "left")
_STEP = 0.5  # pixels between samples of a profile across an edge


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A straight line through ``points`` (total least squares, outliers dropped)."""
    for _ in range(4):
        centre = points.mean(axis=0)
        spread_xy = points - centre
        _, axes = np.linalg.eigh(spread_xy.T @ spread_xy)  # ascending: normal, direction
        normal, direction = axes[:, 0], axes[:, 1]
        residual = spread_xy @ normal
        spread = 1.4826 * float(np.median(np.abs(residual)))
        keep = np.abs(residual) <= max(1.0, 3 * spread)
        if keep.all() or keep.sum() < 4:
            break
        points = points[keep]
    return centre, direction


def _refine(smooth: np.ndarray, rough: np.ndarray, reach: float, min_step: float) -> np.ndarray:
    lines = []
    for side in range(4):
        p, q = rough[side], rough[(side + 1) % 4]
        along = q - p
        length = float(np.hypot(*along))
        if length < 8:
            raise ValueError(f"the glass found is too small ({length:.0f} px {_SIDES[side]} side)")
        u = along / length
        normal = np.array([u[1], -u[0]])  # outward, for corners clockwise on screen
        count = int(np.clip(length / 5, 12, 120))
        base = p + np.linspace(0.12, 0.88, count)[:, None] * along
        offsets = np.arange(-reach, reach + 1e-9, _STEP)
        px = base[:, 0, None] + offsets[None, :] * normal[0]
        py = base[:, 1, None] + offsets[None, :] * normal[1]
        profile = _bilinear(smooth, px, py)
        quarter = max(2, len(offsets) // 4)
        inner = np.median(profile[:, :quarter], axis=1)
        outer = np.median(profile[:, -quarter:], axis=1)
        level = (inner + outer) / 2
        below = profile < level[:, None]
        # Beyond the frame the edge pixel repeats: a glass edge inside the frame still shows,
        # a glass running off the frame shows no step and is not taken for an edge.
        usable = inner - outer >= min_step
        first = np.argmax(below, axis=1)
        usable &= below.any(axis=1) & (first > 0)
        rows = np.nonzero(usable)[0]
        j = first[rows]
        a, b = profile[rows, j - 1], profile[rows, j]
        frac = (a - level[rows]) / np.where(a - b == 0, 1.0, a - b)
        offset = offsets[j - 1] + np.clip(frac, 0, 1) * _STEP
        points = base[rows] + offset[:, None] * normal
        if len(points) < max(6, count // 3):
            raise ValueError(
                f"the {_SIDES[side]} edge of the glass is not clearly visible "
                f"({len(points)} of {count} samples): frame the whole display with a margin"
            )
        lines.append(_fit_line(points))
    corners = []
    for k in range(4):
        (c1, d1), (c2, d2) = lines[k - 1], lines[k]
        matrix = np.array([d1, -d2]).T
        if abs(np.linalg.det(matrix)) < 1e-6:
            raise ValueError("two sides of the glass found are parallel")
        s = np.linalg.solve(matrix, c2 - c1)[0]
        corners.append(c1 + s * d1)
    return np.array(corners)


def find_glass(grey: np.ndarray, near: Sequence[Point] | np.ndarray | None = None) -> Quad:
    """Corners of the display glass in a frame (top-left, top-right, bottom-right,
    bottom-left, pixels); ``ValueError`` saying why when there is no clear glass.

    ``near``: where the glass was in an earlier frame of the same camera; tried first
    (cheaper, and steady), falling back to a search of the whole frame.
    """
    height, width = grey.shape
    r = _smoothing(width, height)
    smooth = _box_mean(grey, r)
    threshold, low, high = _otsu(smooth)
    if high - low < 20:
        raise ValueError(
            f"no glass brighter than its surroundings (levels {low:.0f} and {high:.0f})"
        )
    min_step = 0.4 * (high - low)
    reach = 2.0 * r + 4
    corners = None
    if near is not None:
        try:
            corners = _refine(smooth, np.asarray(near, float), reach, min_step)
            if np.abs(corners - np.asarray(near, float)).max() > reach / 2:
                corners = None
        except ValueError:
            corners = None
    if corners is None:
        rows, x0, x1 = _largest_region(smooth > threshold)
        if len(rows) == 0 or float(np.sum(x1 - x0)) < 0.02 * width * height:
            raise ValueError("no bright region large enough to be the display glass")
        left, right = x0.astype(float), (x1 - 1).astype(float)
        y = rows.astype(float)
        tl, tr = int(np.argmin(left + y)), int(np.argmax(right - y))
        br, bl = int(np.argmax(right + y)), int(np.argmin(left - y))
        rough = np.array(
            [(left[tl], y[tl]), (right[tr], y[tr]), (right[br], y[br]), (left[bl], y[bl])]
        )
        corners = _refine(smooth, rough, reach, min_step)
        corners = _refine(smooth, corners, reach, min_step)
    out = []
    for k, (x, y) in enumerate(corners):
        if not (-1.5 <= x <= width + 0.5 and -1.5 <= y <= height + 0.5):
            raise ValueError(
                f"the glass runs off the frame ({_CORNERS[k]} corner at ({x:.1f}, {y:.1f})): "
                "frame the whole display with a margin"
            )
        out.append((min(max(float(x), 0.0), width - 1.0), min(max(float(y), 0.0), height - 1.0)))
    if not clockwise_convex(out):
        raise ValueError("the bright region found is not a convex quadrilateral")
    return tuple(out)  # type: ignore[return-value]


_CORNERS = ("top-left", "top-right", "bottom-right", "bottom-left")


def check_glass_shape(corners: np.ndarray, glass: Sequence[Point]) -> None:
    """``ValueError`` when located corners cannot be the map's glass seen by a camera: the
    width/height ratio differs by more than a factor of 2 (a wrong region, not perspective)."""

    def aspect(q: np.ndarray) -> float:
        w = (np.hypot(*(q[1] - q[0])) + np.hypot(*(q[2] - q[3]))) / 2
        h = (np.hypot(*(q[3] - q[0])) + np.hypot(*(q[2] - q[1]))) / 2
        return float(w / max(h, 1e-9))

    found, expected = aspect(np.asarray(corners)), aspect(np.asarray(glass, float))
    if not 0.5 <= found / expected <= 2.0:
        raise ValueError(
            f"the bright region found (width/height {found:.2f}) is not the display glass "
            f"of the segment map (width/height {expected:.2f})"
        )


# --------------------------------------------------------------------------------------------
# Frames: from an HTTP snapshot URL or an image file

_MAX_FRAME_BYTES = 64 * 1024 * 1024
_MAX_PIXELS = 40_000_000
_PNG = b"\x89PNG\r\n\x1a\n"
_RETRY_S = 0.05  # pause before asking again after a refused connection or a server error
_POLL_S = 0.02  # pause before looking again when the camera still shows the same frame


class _Fault(Exception):
    """A frame could not be had. ``kind``: ``timeout`` (no answer in time), ``gone``
    (refused, unreachable), ``corrupt`` (arrived broken), ``busy`` (server error, retry),
    ``fatal`` (misconfiguration: retrying cannot help)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class _Fetched:
    data: bytes
    key: tuple[object, ...]  # what makes this frame differ from the last one
    info: str


def open_frame(data: bytes) -> Image.Image:
    """Decode frame bytes, checking them first (``Image.verify``: every PNG chunk CRC), then
    loading a fresh copy; ``ValueError`` describing a corrupt or unsupported frame."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.width * probe.height > _MAX_PIXELS:
                raise ValueError(f"frame of {probe.width}x{probe.height} pixels is too large")
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except ValueError:
        raise
    except Exception as exc:  # Pillow reports corruption with many exception types
        raise ValueError(f"corrupt frame ({type(exc).__name__}: {exc})") from None
    return image


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _HttpCamera:
    """Snapshots by HTTP GET. Credentials in the URL (``http://user:pass@host/…``) are sent
    by basic or digest authentication and never shown. Environment proxies are not used: a
    camera sits on the bench network."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"camera URL {url!r} has no host")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        self.url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        self.netloc = netloc
        self.password = urllib.parse.unquote(parts.password or "")
        shown = netloc if not parts.username else f"{parts.username}:***@{netloc}"
        self.shown = urllib.parse.urlunsplit(parts._replace(netloc=shown))
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if parts.username:
            passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
            passwords.add_password(
                None, self.url, urllib.parse.unquote(parts.username), self.password
            )
            handlers += [
                urllib.request.HTTPBasicAuthHandler(passwords),
                urllib.request.HTTPDigestAuthHandler(passwords),
            ]
        self._opener = urllib.request.build_opener(*handlers)
        self.server = ""

    def describe(self) -> str:
        return f"GET {self.shown}"

    def fetch(self, left: Callable[[], float]) -> _Fetched:
        request = urllib.request.Request(
            self.url, headers={"Cache-Control": "no-cache", "User-Agent": "stslab-display"}
        )
        try:
            with self._opener.open(request, timeout=max(left(), 0.001)) as response:
                self.server = response.headers.get("Server", "") or self.server
                ctype = response.headers.get_content_type()
                if ctype.startswith("text/"):
                    raise _Fault(
                        "fatal", f"the camera answered {ctype}, not an image: check the URL"
                    )
                length = response.headers.get("Content-Length")
                chunks, total = [], 0
                while True:
                    if left() <= 0:
                        raise _Fault("timeout", "the frame did not arrive in time")
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > _MAX_FRAME_BYTES:
                        raise _Fault("fatal", f"frame larger than {_MAX_FRAME_BYTES} bytes")
                    chunks.append(chunk)
                data = b"".join(chunks)
                if length is not None and length.isdigit() and int(length) != len(data):
                    raise _Fault("corrupt", f"short frame: {len(data)} of {length} bytes")
                ids = tuple(
                    response.headers.get(h, "") for h in ("X-Frame", "ETag", "Last-Modified")
                )
                sha = _sha(data)
                tags = " ".join(
                    f"{h}={v}" for h, v in zip(("X-Frame", "ETag"), ids, strict=False) if v
                )
                info = f"{response.status} {ctype} {len(data)} bytes {tags} sha256={sha[:16]}"
                return _Fetched(data, (*ids, sha), info)
        except _Fault:
            raise
        except urllib.error.HTTPError as exc:
            exc.close()
            kind = "busy" if exc.code >= 500 or exc.code == 429 else "fatal"
            raise _Fault(kind, f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise _fault_of(exc.reason) from None
        except (http.client.HTTPException, OSError) as exc:
            raise _fault_of(exc) from None

    def identity(self) -> Identity:
        product = self.server.split()[0] if self.server.split() else ""
        model, _, version = product.partition("/")
        return Identity(
            manufacturer="HTTP camera",
            model=model or "unknown",
            serial=self.netloc,
            firmware=version or "unknown",
            raw=f"Server: {self.server or '(none)'}; URL: {self.shown}",
        )


def _fault_of(reason: object) -> _Fault:
    if isinstance(reason, TimeoutError | socket.timeout):
        return _Fault("timeout", "the camera did not answer in time")
    if isinstance(reason, ConnectionRefusedError):
        return _Fault("gone", "the camera refused the connection")
    if isinstance(reason, http.client.IncompleteRead | http.client.BadStatusLine):
        return _Fault("corrupt", f"broken answer ({type(reason).__name__})")
    if isinstance(reason, ConnectionError | http.client.HTTPException):
        return _Fault("corrupt", f"connection broke ({type(reason).__name__}: {reason})")
    if isinstance(reason, socket.gaierror):
        return _Fault("fatal", f"unknown camera host ({reason})")
    if isinstance(reason, ssl.SSLError):
        return _Fault("fatal", f"TLS with the camera failed ({reason})")
    return _Fault("gone", f"the camera cannot be reached ({reason})")


class _FrameFile:
    """Frames from an image file (PNG, JPEG, …) that a capture tool keeps overwriting."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return f"read {self.path}"

    def fetch(self, left: Callable[[], float]) -> _Fetched:
        try:
            stat = self.path.stat()
            if stat.st_size > _MAX_FRAME_BYTES:
                raise _Fault("fatal", f"frame file larger than {_MAX_FRAME_BYTES} bytes")
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise _Fault(
                "gone", f"no frame file {self.path} (is the capture tool running?)"
            ) from None
        except IsADirectoryError:
            raise _Fault("fatal", f"{self.path} is a directory, not a frame file") from None
        except PermissionError as exc:
            raise _Fault("fatal", f"cannot read {self.path}: {exc.strerror}") from None
        except OSError as exc:
            raise _Fault("corrupt", f"cannot read {self.path}: {exc.strerror or exc}") from None
        sha = _sha(data)
        info = f"{len(data)} bytes mtime_ns={stat.st_mtime_ns} sha256={sha[:16]}"
        return _Fetched(data, (stat.st_mtime_ns, sha), info)

    def identity(self) -> Identity:
        return Identity(
            manufacturer="frame file",
            model="image file",
            serial=str(self.path),
            firmware="n/a",
            raw=f"file: {self.path}",
        )


def _source_of(address: str) -> _HttpCamera | _FrameFile:
    parts = urllib.parse.urlsplit(address)
    if parts.scheme in ("http", "https"):
        return _HttpCamera(address)
    if parts.scheme == "file":
        path = Path(urllib.parse.unquote(parts.path))
    elif parts.scheme == "" or (len(parts.scheme) == 1 and os.name == "nt"):
        path = Path(address)
    else:
        raise ValueError(
            f"unsupported camera address {address!r}: use http://…/snapshot.png or "
            "file:///path/to/frame.png"
        )
    if str(path).startswith("/dev/") or path.is_char_device():
        raise ValueError(
            f"{path} is a capture device; reading V4L2 devices directly is not supported. Let "
            f"a capture tool keep one frame file current (e.g. ffmpeg -f v4l2 -i {path} "
            "-update 1 -y /tmp/lcd.png) and use file:///tmp/lcd.png"
        )
    return _FrameFile(path)


# --------------------------------------------------------------------------------------------
# The driver


@dataclass
class _Tally:
    """What one read saw, for the message when it gives up."""

    frames: int = 0
    corrupt: int = 0
    unreadable: int = 0
    doubtful: int = 0
    changes: int = 0
    last_fault: _Fault | None = None
    gone: bool = False  # the last attempt found the camera gone
    last: FrameDecode | None = None

    def summary(self) -> str:
        parts = [f"{self.frames} frames"]
        for count, what in (
            (self.corrupt, "corrupt"),
            (self.unreadable, "unreadable"),
            (self.doubtful, "below confidence"),
            (self.changes, "changes of reading"),
        ):
            if count:
                parts.append(f"{count} {what}")
        text = ", ".join(parts)
        if self.last is not None:
            text += f"; last frame: {self.last.describe()}"
        if self.last_fault is not None:
            text += f"; last fault: {self.last_fault.message}"
        return text


@register
class CameraSegmentReader(Driver):
    """Display reader: a camera on the meter's LCD, read by segment sampling.

    ``address``: the camera's snapshot URL (``http://host/snapshot.png``; an IP camera's
    still-image URL, credentials in the URL if it needs them), or an image file that a
    capture tool keeps overwriting (``file:///path/frame.png`` or a plain path, PNG or JPEG).
    Capture devices (``/dev/videoN``) are not read directly: that needs a video library this
    harness does not depend on; point a capture tool at the device and read its frame file.

    ``segment_map``: the calibrated segment map file (frame pixels; see :func:`calibrate`),
    or with ``locate_glass=True`` a map in layout pixels whose glass is found in every frame.
    ``consecutive``: how many consecutive frames must decode to the same reading, each with
    confidence at least ``min_confidence``, before it is accepted. ``max_frames`` bounds the
    frames one read looks at; ``timeout_s`` is the default time budget of a read.

    A frame identical to the previous one (a camera serving a cached still, a file not yet
    rewritten) is not counted again.
    """

    name = "camera-segment"
    role = "display"

    def __init__(
        self,
        address: str,
        *,
        segment_map: str | Path | SegmentMap,
        timeout_s: float = 5.0,
        consecutive: int = 3,
        min_confidence: float = 0.5,
        max_frames: int = 100,
        locate_glass: bool = False,
    ) -> None:
        if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
            raise ValueError(f"consecutive must be a whole number >= 1, got {consecutive!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within 0..1, got {min_confidence!r}")
        if isinstance(max_frames, bool) or not isinstance(max_frames, int):
            raise ValueError(f"max_frames must be a whole number, got {max_frames!r}")
        if max_frames < consecutive:
            raise ValueError(f"max_frames ({max_frames}) is less than consecutive ({consecutive})")
        source = _source_of(address)
        shown = source.shown if isinstance(source, _HttpCamera) else address
        super().__init__(shown, timeout_s=timeout_s)
        if isinstance(source, _HttpCamera) and source.password:
            self.transcript.add_secret(source.password)
        smap = segment_map if isinstance(segment_map, SegmentMap) else SegmentMap.load(segment_map)
        self.segment_map = smap
        self.consecutive = consecutive
        self.min_confidence = min_confidence
        self.max_frames = max_frames
        self.locate_glass = locate_glass
        self._source = source
        self._decoder = SegmentDecoder(smap, locate_glass=locate_glass)
        self._last_key: tuple[object, ...] | None = None
        self._closed = False

    # -- the role ----------------------------------------------------------------------------

    def read(self, timeout_s: float | None = None) -> DisplayReading:
        """What the display shows, once ``consecutive`` frames agree with confidence.

        Raises :class:`InstrumentTimeout` ("display unreadable: …") when no reading is
        accepted within ``timeout_s`` (default: the driver's) or ``max_frames`` frames,
        :class:`InstrumentGone` when the camera cannot be reached, :class:`InstrumentError`
        for a misconfigured camera (HTTP 4xx, frames of the wrong size).
        """
        budget = self._budget(timeout_s)
        left = deadline(budget)
        tally = _Tally()
        run: list[FrameDecode] = []
        while True:
            fetched = self._next_frame(left, tally, self.max_frames)
            if fetched is None:
                raise self._gave_up(budget, tally)
            data, image = fetched
            decode = self._decode(image)
            tally.last = decode
            self.transcript.note(f"frame {tally.frames}: {decode.describe()}")
            if not decode.readable:
                tally.unreadable += 1
                run.clear()
                continue
            if decode.confidence < self.min_confidence:
                tally.doubtful += 1
                run.clear()
                continue
            if run and not run[-1].agrees(decode):
                tally.changes += 1
                run.clear()
            run.append(decode)
            if len(run) >= self.consecutive:
                reading = DisplayReading(
                    text=decode.text or "",
                    annunciators=decode.annunciators,
                    confidence=min(d.confidence for d in run),
                    frame_png=data if data.startswith(_PNG) else _png_of(image),
                    frames_read=tally.frames,
                )
                self.transcript.note(
                    f"accepted {reading.text!r} icons "
                    f"{','.join(sorted(reading.annunciators)) or '-'} confidence "
                    f"{reading.confidence:.2f} after {tally.frames} frames"
                )
                return reading

    def identify(self) -> Identity:
        """The camera (HTTP ``Server`` header and URL, or the frame file), after checking that
        one of its frames decodes with confidence."""
        left = deadline(self._budget(None))
        tally = _Tally()
        while True:
            fetched = self._next_frame(left, tally, self.max_frames, fresh=False)
            if fetched is None:
                raise self._gave_up(self.timeout_s, tally)
            decode = self._decode(fetched[1])
            tally.last = decode
            self.transcript.note(f"identify frame {tally.frames}: {decode.describe()}")
            if decode.readable and decode.confidence >= self.min_confidence:
                return self._source.identity()

    def close(self) -> None:
        """Release the camera (no connection is held between frames); idempotent."""
        self._closed = True
        self._last_key = None

    # -- internals ---------------------------------------------------------------------------

    def _budget(self, timeout_s: float | None) -> float:
        if self._closed:
            raise self.error(InstrumentError, "the display reader is closed")
        budget = self.timeout_s if timeout_s is None else timeout_s
        if not budget > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        return budget

    def _decode(self, image: Image.Image) -> FrameDecode:
        try:
            return self._decoder.decode(image)
        except FrameMismatch as exc:
            raise self.error(InstrumentError, str(exc)) from None

    def _next_frame(
        self, left: Callable[[], float], tally: _Tally, limit: int, *, fresh: bool = True
    ) -> tuple[bytes, Image.Image] | None:
        """The next intact frame (a new one unless ``fresh`` is false), or None when the time
        is up or ``limit`` frames have been seen."""
        while left() > 0 and tally.frames < limit:
            self.transcript.tx(self._source.describe())
            try:
                fetched = self._source.fetch(left)
            except _Fault as fault:
                self.transcript.note(f"{fault.kind}: {fault.message}")
                cut_short = fault.kind == "timeout" and left() <= 0
                if not (cut_short and tally.last_fault is not None):
                    # an attempt the budget cut short says less than the answer before it
                    tally.last_fault = fault
                    tally.gone = fault.kind == "gone"
                if fault.kind == "fatal":
                    raise self.error(InstrumentError, fault.message) from None
                if fault.kind == "corrupt":
                    tally.frames += 1
                    tally.corrupt += 1
                elif fault.kind in ("gone", "busy"):
                    time.sleep(min(_RETRY_S, left()))
                continue
            self.transcript.rx(fetched.info)
            tally.gone = False
            if fresh and fetched.key == self._last_key:
                self.transcript.note("same frame as before; waiting for a new one")
                time.sleep(min(_POLL_S, left()))
                continue
            self._last_key = fetched.key
            tally.frames += 1
            try:
                image = open_frame(fetched.data)
            except ValueError as exc:
                tally.corrupt += 1
                tally.last_fault = _Fault("corrupt", str(exc))
                self.transcript.note(f"frame {tally.frames} skipped: {exc}")
                continue
            return fetched.data, image
        return None

    def _gave_up(self, budget: float, tally: _Tally) -> InstrumentError:
        fault = tally.last_fault
        if tally.gone and fault is not None:
            return self.error(InstrumentGone, f"{fault.message} (for {budget:g} s)")
        if tally.frames == 0:
            why = fault.message if fault is not None else "no new frame"
            return self.error(InstrumentTimeout, f"no frame within {budget:g} s: {why}")
        if tally.frames >= self.max_frames:
            return self._unreadable(f"within {self.max_frames} frames", tally)
        return self._unreadable(f"within {budget:g} s", tally)

    def _unreadable(self, limit: str, tally: _Tally) -> InstrumentTimeout:
        return self.error(  # type: ignore[return-value]
            InstrumentTimeout,
            f"display unreadable: no {self.consecutive} agreeing frames with confidence >= "
            f"{self.min_confidence:g} {limit} ({tally.summary()})",
        )


def _png_of(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Calibration


class CalibrationError(ValueError):
    """The calibration frame and layout do not give a usable segment map (says why)."""


CALIBRATION_MIN_CONTRAST = 0.25
"""Least darkness every segment must show in the all-segments calibration frame."""


def calibrate(
    frame_png: bytes,
    layout_yaml: str,
    *,
    layout_source: str = "<layout>",
    min_contrast: float = CALIBRATION_MIN_CONTRAST,
) -> str:
    """A segment map calibrated to one camera, as YAML, from one frame showing every segment.

    ``frame_png``: a frame (PNG, or any image Pillow reads) of the meter showing all segments
    and annunciators (its display test). ``layout_yaml``: the meter model's segment map in
    layout pixels (``layout_source`` names it in errors). The glass is located in the frame,
    the homography from the layout's glass corners to it fitted, every polygon warped into
    frame pixels, and every segment checked to read ON: darkness at least ``min_contrast``
    and at least half the median segment's. The YAML's header comments record the frame's
    hash, the glass corners and every segment's contrast.

    Raises :class:`~instruments.segment_map.SegmentMapError` for a bad layout and
    :class:`CalibrationError` for a frame that cannot calibrate it.
    """
    layout = SegmentMap.parse_yaml(layout_yaml, source=layout_source)
    try:
        image = open_frame(frame_png)
    except ValueError as exc:
        raise CalibrationError(f"the calibration frame cannot be decoded: {exc}") from None
    grey = grey_levels(image)
    try:
        corners = np.array(find_glass(grey))
        check_glass_shape(corners, layout.glass)
    except ValueError as exc:
        raise CalibrationError(f"cannot locate the display glass in the frame: {exc}") from None
    matrix = homography(layout.glass, [tuple(c) for c in corners])
    try:
        smap = layout.warped(matrix, image.size, source=f"{layout_source} (calibrated)")
    except SegmentMapError as exc:
        raise CalibrationError(f"the glass found does not fit the layout: {exc}") from None
    levels = SegmentDecoder(smap).levels(image)
    contrast = levels.darkness
    median = float(np.median(contrast))
    floor = max(min_contrast, median / 2)
    off = [
        f"{sid} ({c:.2f})" for sid, c in zip(levels.ids, contrast, strict=True) if not c >= floor
    ]
    if off:
        raise CalibrationError(
            f"{len(off)} of {len(levels.ids)} segments do not read ON in the calibration frame "
            f"(contrast below {floor:.2f}): {', '.join(off[:12])}"
            f"{' …' if len(off) > 12 else ''}. Show every segment (the meter's display test) "
            f"and check that {layout_source} is this meter model's layout"
        )
    weakest = int(np.argmin(contrast))
    width, height = image.size
    table = [f"{sid} {c:.2f}" for sid, c in zip(levels.ids, contrast, strict=True)]
    header = [
        f"Segment map of {layout.name} calibrated to one camera (frame pixels, {width}x{height}).",
        f"Layout: {layout_source}; calibration frame sha256 {_sha(frame_png)}.",
        "Glass corners found (TL, TR, BR, BL): "
        + ", ".join(f"({x:.2f}, {y:.2f})" for x, y in corners),
        f"Segment contrast (1 - segment level / local glass level): min {contrast[weakest]:.2f} "
        f"({levels.ids[weakest]}), median {median:.2f}.",
        *("  ".join(table[i : i + 8]) for i in range(0, len(table), 8)),
    ]
    return smap.to_yaml("\n".join(header))


__all__ = [
    "MIN_CONTRAST",
    "SEVEN_SEGMENT_FONT",
    "CalibrationError",
    "CameraSegmentReader",
    "FrameDecode",
    "FrameMismatch",
    "SegmentDecoder",
    "SegmentLevels",
    "calibrate",
    "decode_cells",
    "find_glass",
    "grey_levels",
    "open_frame",
]
