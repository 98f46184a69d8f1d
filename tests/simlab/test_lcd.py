"""The simulated LCD: font, segment layouts, rendering, and reading frames back."""

from __future__ import annotations

import io
import random
import string
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from simlab.lcd import (
    CANONICAL_GLYPHS,
    GLASS_RGB,
    INK_RGB,
    NOISE_LEVELS,
    REQUIRED_ANNUNCIATORS,
    SEVEN_SEGMENT_FONT,
    DisplayState,
    FrameGeometry,
    LayoutError,
    SegmentLayout,
    decode_cells,
    encode_text,
    render,
    render_png,
    render_with_geometry,
)

LAYOUT_8 = SegmentLayout.builtin("lcd_8digit")
LAYOUT_6 = SegmentLayout.builtin("lcd_6digit")
PROFILES = Path(__file__).resolve().parents[2] / "dut" / "profiles"


def canonical(text: str) -> str:
    return "".join(CANONICAL_GLYPHS.get(ch, ch) for ch in text)


# -- font --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ch", sorted(SEVEN_SEGMENT_FONT))
def test_every_glyph_round_trips(ch: str) -> None:
    assert decode_cells(encode_text(ch, 1)) == canonical(ch)
    assert decode_cells(encode_text(ch + ".", 1)) == canonical(ch) + "."


def test_only_documented_glyphs_are_ambiguous() -> None:
    by_pattern: dict[frozenset[str], set[str]] = {}
    for ch, segs in SEVEN_SEGMENT_FONT.items():
        by_pattern.setdefault(segs, set()).add(ch)
    shared = sorted(sorted(chars) for chars in by_pattern.values() if len(chars) > 1)
    assert shared == [["0", "O"], ["5", "S"]]
    assert dict(CANONICAL_GLYPHS) == {"O": "0", "S": "5"}


def test_supported_characters_are_the_documented_set() -> None:
    letters = set("AbCcdEFGHhIiJLnoOPrStUuy")
    assert set(SEVEN_SEGMENT_FONT) == {*string.digits, " ", "-", "_", *letters}


def test_text_is_right_aligned_and_dot_lights_previous_dp() -> None:
    cells = encode_text("12.5", 6)
    assert cells[:3] == [frozenset()] * 3
    assert cells[3] == frozenset("bc")
    assert cells[4] == frozenset({"a", "b", "d", "e", "g", "dp"})
    assert cells[5] == frozenset("acdfg")


def test_leading_and_doubled_dots_get_blank_cells() -> None:
    assert encode_text(".5", 2) == [frozenset({"dp"}), frozenset("acdfg")]
    assert encode_text("1..", 3) == [frozenset(), frozenset({"b", "c", "dp"}), frozenset({"dp"})]


@pytest.mark.parametrize("bad", ["B", "K", "%", "x", "é"])
def test_unsupported_character_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad)):
        encode_text(f"12{bad}4", 8)


def test_text_longer_than_the_display_is_refused() -> None:
    with pytest.raises(ValueError, match="needs 9 digit cells"):
        encode_text("123456789", 8)
    assert len(encode_text("12345678.", 8)) == 8


def test_unknown_pattern_is_refused_or_replaced() -> None:
    cells = [frozenset("ab"), frozenset("bc")]
    with pytest.raises(ValueError, match="cell 1"):
        decode_cells(cells)
    assert decode_cells(cells, unknown="?") == "?1"
    with pytest.raises(ValueError, match="no segment named"):
        decode_cells([{"a", "z"}])


_CHARS = sorted(SEVEN_SEGMENT_FONT)


@given(st.lists(st.tuples(st.sampled_from(_CHARS), st.booleans()), max_size=10))
def test_decode_inverts_encode(spec: list[tuple[str, bool]]) -> None:
    text = "".join(ch + ("." if dot else "") for ch, dot in spec)
    cells = encode_text(text, 10)
    assert decode_cells(cells) == canonical(" " * (10 - len(spec)) + text)
    assert encode_text(decode_cells(cells), 10) == cells


# -- layouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "digits"), [(LAYOUT_8, 8), (LAYOUT_6, 6)])
def test_shipped_layouts_load(layout: SegmentLayout, digits: int) -> None:
    assert layout.digit_count == digits
    assert set(REQUIRED_ANNUNCIATORS) <= set(layout.annunciators)
    ids = layout.segment_ids
    assert len(ids) == len(set(ids)) == 8 * digits + len(layout.annunciators)
    assert ids[0] == "d1.a" and f"d{digits}.dp" in ids and "ann.relay_open" in ids
    assert set(layout.segment_map()) == set(ids)
    label = layout.label_image()
    assert sorted(np.unique(label)) == list(range(len(ids) + 2))


def test_shipped_layouts_are_different_models() -> None:
    assert LAYOUT_8.name != LAYOUT_6.name
    assert LAYOUT_8.size != LAYOUT_6.size
    # The 6-digit model shows its icons below the digits.
    icons_y = max(y for poly in LAYOUT_6.annunciators["kwh"] for _, y in poly)
    digit_y = min(y for poly in LAYOUT_6.digits[0].a for _, y in poly)
    assert icons_y > digit_y


def test_shipped_layouts_match_their_documented_generator() -> None:
    eight = SegmentLayout.seven_segment(8, size=(640, 240), slant=0.08, name="lcd-8digit")
    six = SegmentLayout.seven_segment(
        6,
        size=(512, 224),
        margin=20,
        slant=0.0,
        thickness=0.2,
        digit_aspect=0.5,
        annunciators_at="bottom",
        name="lcd-6digit",
    )
    assert (eight, six) == (LAYOUT_8, LAYOUT_6)


def test_yaml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(LAYOUT_6.to_yaml("a header"), encoding="utf-8")
    assert path.read_text(encoding="utf-8").startswith("# a header\n")
    assert SegmentLayout.from_yaml(path) == LAYOUT_6


@pytest.mark.parametrize("digits", [1, 4, 10, 12])
def test_generated_layouts_are_valid_for_any_digit_count(digits: int) -> None:
    layout = SegmentLayout.seven_segment(digits, size=(800, 200), slant=0.0)
    assert layout.digit_count == digits
    state = DisplayState("8" * digits, frozenset(REQUIRED_ANNUNCIATORS))
    assert len(state.segments(layout)) == 7 * digits + len(REQUIRED_ANNUNCIATORS)


def test_unknown_builtin_layout_lists_the_known_ones() -> None:
    with pytest.raises(LayoutError, match="lcd_6digit, lcd_8digit"):
        SegmentLayout.builtin("lcd_9digit")


_SOURCE = (PROFILES / "lcd_8digit.yaml").read_text(encoding="utf-8")
_DP3 = next(line for line in _SOURCE.splitlines() if line.startswith("  dp:"))


_BAD_NAME = "  Bad-Name: [[50, 50], [60, 50], [55, 60]]\n  tamper:"


def _dp(points: str) -> Callable[[str], str]:
    return lambda s: s.replace(_DP3, f"  dp: {points}", 1)


@pytest.mark.parametrize(
    ("edit", "key", "message", "line_of"),
    [
        (lambda s: s.replace(_DP3 + "\n", "", 1), "digits[0].dp", "Field required", "- a:"),
        (_dp("[[1.0, 1.0], [2.0, 'x'], [3, 3]]"), "digits[0].dp", "[x, y] numbers", "  dp:"),
        (_dp("[[1.0, 1.0], [2.0, 1.0]]"), "digits[0].dp", "at least 3", "  dp:"),
        (_dp("[[1.0, 1.0], [700.0, 1.0], [2.0, 5.0]]"), "digits[0].dp", "outside", "  dp:"),
        (_dp("[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]"), "digits[0].dp", "beyond", "  dp:"),
        (_dp("[[40.0, 90.0], [80.0, 90.0], [60.0, 99.0]]"), "digits[0].dp", "d1.a", "  dp:"),
        (lambda s: s.replace("size:", "colour: 1\nsize:", 1), "colour", "Extra inputs", "colour"),
        (lambda s: s.replace("  tamper:", "  t:", 1), "annunciators", "tamper", "annunciators:"),
        (
            lambda s: s.replace("  tamper:", _BAD_NAME, 1),
            "annunciators.Bad-Name",
            "lower_snake_case",
            "  Bad-Name",
        ),
        (lambda s: s.replace("[640, 240]", "[640, -1]", 1), "size[1]", "greater", "size:"),
    ],
)
def test_bad_layout_names_file_key_and_line(
    edit: Callable[[str], str], key: str, message: str, line_of: str
) -> None:
    text = edit(_SOURCE)
    assert text != _SOURCE
    with pytest.raises(LayoutError) as info:
        SegmentLayout.parse_yaml(text, source="meters/acme.yaml")
    line = text[: text.index(line_of)].count("\n") + 1
    assert str(info.value).startswith(f"meters/acme.yaml: {key} (line {line}): ")
    assert message in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(_SOURCE.replace("size: [640, 240]", "size: [640, 240", 1), encoding="utf-8")
    with pytest.raises(LayoutError, match=r"broken\.yaml: line \d+: invalid YAML"):
        SegmentLayout.from_yaml(path)


def test_missing_file_and_wrong_document_shape(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=r"nope\.yaml: cannot read"):
        SegmentLayout.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(LayoutError, match=r"x\.yaml: a layout is a mapping"):
        SegmentLayout.parse_yaml("- 1\n- 2\n", source="x.yaml")


# -- display state -----------------------------------------------------------------------------


def test_display_state_lights_segment_ids() -> None:
    state = DisplayState("1.", {"tamper"})
    assert state.segments(LAYOUT_6) == frozenset({"d6.b", "d6.c", "d6.dp", "ann.tamper"})
    assert DisplayState.from_segments(LAYOUT_6, state.segments(LAYOUT_6)) == state


def test_display_state_refuses_what_the_layout_cannot_show() -> None:
    with pytest.raises(ValueError, match="no annunciator alarm"):
        DisplayState("1", {"alarm"}).segments(LAYOUT_8)
    with pytest.raises(ValueError, match="needs 7 digit cells"):
        DisplayState("1234567").segments(LAYOUT_6)
    with pytest.raises(ValueError, match=r"no segment d9\.a"):
        DisplayState.from_segments(LAYOUT_8, {"d9.a"})


# -- rendering ---------------------------------------------------------------------------------


def _centre(shape: Sequence[Sequence[tuple[float, float]]]) -> tuple[int, int]:
    xs = [x for poly in shape for x, _ in poly]
    ys = [y for poly in shape for _, y in poly]
    return round(sum(xs) / len(xs)), round(sum(ys) / len(ys))


def test_clean_frame_shows_ink_ghosts_and_glass() -> None:
    image = render(LAYOUT_8, DisplayState("8", {"kwh"}).segments(LAYOUT_8))
    assert image.mode == "RGB" and image.size == LAYOUT_8.size
    px = image.load()
    lit = px[_centre(LAYOUT_8.digits[7].g)]
    ghost = px[_centre(LAYOUT_8.digits[0].g)]
    glass = px[LAYOUT_8.size[0] // 2, 30]
    bezel = px[2, 2]
    assert max(abs(a - b) for a, b in zip(lit, INK_RGB, strict=True)) <= 2
    assert max(abs(a - b) for a, b in zip(glass, GLASS_RGB, strict=True)) <= 2
    assert lit[1] < bezel[1] + 40 < glass[1]
    # A ghost is visibly darker than the glass but nowhere near a lit segment.
    assert glass[1] - 30 < ghost[1] < glass[1] - 5
    assert glass[1] > glass[0] and glass[1] > glass[2]  # greenish
    grey = np.asarray(image.convert("L"), float)
    mask = np.zeros(grey.shape, bool)
    mask[LAYOUT_8.label_image() == LAYOUT_8.segment_ids.index("ann.kwh") + 2] = True
    assert grey[mask].mean() < 60


def test_same_seed_same_frame_and_noise_changes_per_frame() -> None:
    lit = DisplayState("-42.0").segments(LAYOUT_8)
    kw = dict(noise=10.0, blur=1.0, skew=0.03, seed=7)
    first = render_png(LAYOUT_8, lit, **kw)
    assert render_png(LAYOUT_8, lit, **kw) == first
    assert Image.open(io.BytesIO(first)).format == "PNG"
    a, geo_a = render_with_geometry(LAYOUT_8, lit, **kw, frame=1)
    b, geo_b = render_with_geometry(LAYOUT_8, lit, **kw, frame=2)
    assert geo_a == geo_b  # the camera does not move between frames
    assert np.asarray(a).tobytes() != np.asarray(b).tobytes()
    _, other = render_with_geometry(LAYOUT_8, lit, skew=0.03, seed=8)
    assert other != geo_a


def test_render_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"no segment d1\.z"):
        render(LAYOUT_8, {"d1.z"})
    with pytest.raises(ValueError, match="skew"):
        render(LAYOUT_8, set(), skew=0.5, seed=1)
    with pytest.raises(ValueError, match="seed"):
        render(LAYOUT_8, set(), skew=0.01, seed=-1)
    with pytest.raises(ValueError, match="noise"):
        render(LAYOUT_8, set(), noise=-1)
    with pytest.raises(ValueError, match="frame"):
        render(LAYOUT_8, set(), noise=1, frame=-1)


def _homography(src: Sequence[Sequence[float]], dst: Sequence[Sequence[float]]) -> np.ndarray:
    """4-point homography, solved here independently of the code under test."""
    a = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    h = np.linalg.svd(np.array(a, float))[2][-1].reshape(3, 3)
    return h / h[2, 2]


def test_glass_corners_let_a_reader_recover_the_geometry() -> None:
    lit = DisplayState("8.8.8.8.8.8.8.8.").segments(LAYOUT_8)
    image, geo = render_with_geometry(LAYOUT_8, lit, skew=0.05, seed=11)
    h = _homography(LAYOUT_8.glass, geo.glass_corners)
    assert np.allclose(h, np.array(geo.homography), atol=1e-6)
    grey = np.asarray(image.convert("L"), float)
    corners = np.array(geo.glass_corners)
    centre = corners.mean(axis=0)
    for corner in corners:
        inward = corner + 6 * (centre - corner) / np.linalg.norm(centre - corner)
        outward = corner - 3 * (centre - corner) / np.linalg.norm(centre - corner)
        assert grey[round(inward[1]), round(inward[0])] > 150
        if 0 <= outward[0] < grey.shape[1] - 1 and 0 <= outward[1] < grey.shape[0] - 1:
            assert grey[round(outward[1]), round(outward[0])] < 60
    warped = LAYOUT_8.warped(geo)
    x, y = LAYOUT_8.digits[3].g[0][2]
    assert warped.digits[3].g[0][2] == pytest.approx(geo.map_point(x, y), abs=0.01)
    assert FrameGeometry(geo.homography, geo.glass_corners) == geo


# -- reading frames back -----------------------------------------------------------------------


class SegmentSampler:
    """A minimal display reader: map the layout through the frame's glass corners, take the
    mean grey inside each segment, call it lit when darker than the midpoint of the frame's
    glass and bezel levels."""

    def __init__(self, layout: SegmentLayout, geometry: FrameGeometry) -> None:
        h = _homography(layout.glass, geometry.glass_corners)
        width, height = layout.size
        self.ids = layout.segment_ids
        label = Image.new("I", layout.size, 0)
        draw = ImageDraw.Draw(label)

        def warp(poly: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
            p = np.hstack([np.array(poly, float), np.ones((len(poly), 1))]) @ h.T
            return [(float(x), float(y)) for x, y in p[:, :2] / p[:, 2:]]

        glass = Image.new("L", layout.size, 0)
        ImageDraw.Draw(glass).polygon(warp(layout.glass), fill=1)
        self.glass = np.asarray(glass).astype(bool)
        for k, shape in enumerate(layout.segment_map().values()):
            for poly in shape:
                draw.polygon(warp(poly), fill=k + 1)
        self.label = np.asarray(label).ravel()
        self.counts = np.bincount(self.label, minlength=len(self.ids) + 1)
        assert height * width == self.label.size

    def lit(self, image: Image.Image) -> frozenset[str]:
        grey = np.asarray(image.convert("L"), float)
        glass_level = np.median(grey[self.glass])
        bezel_level = np.median(grey[~self.glass])
        threshold = (glass_level + bezel_level) / 2
        means = np.bincount(self.label, weights=grey.ravel(), minlength=len(self.ids) + 1)
        means = means / np.maximum(self.counts, 1)
        return frozenset(sid for k, sid in enumerate(self.ids) if means[k + 1] < threshold)


def random_state(rng: random.Random, layout: SegmentLayout) -> DisplayState:
    n = rng.randint(0, layout.digit_count)
    text = "".join(rng.choice(_CHARS) + ("." if rng.random() < 0.2 else "") for _ in range(n))
    icons = frozenset(name for name in layout.annunciators if rng.random() < 0.5)
    return DisplayState(text, icons)


def read_accuracy(layout: SegmentLayout, preset: str, frames: int, seed: int) -> float:
    """Fraction of frames whose every segment reads back right."""
    level = NOISE_LEVELS[preset]
    rng = random.Random(seed)
    samplers: dict[int, SegmentSampler] = {}
    good = 0
    for i in range(frames):
        state = random_state(rng, layout)
        lit = state.segments(layout)
        camera = i % 8  # a handful of camera mounts, each seen several times
        image, geo = render_with_geometry(
            layout, lit, noise=level.noise, blur=level.blur, skew=level.skew, seed=camera, frame=i
        )
        if camera not in samplers:
            samplers[camera] = SegmentSampler(layout, geo)
        seen = samplers[camera].lit(image)
        if seen == lit:
            good += 1
            read = DisplayState.from_segments(layout, seen)
            assert read.text == canonical(state.text).strip()
            assert read.annunciators == state.annunciators
    return good / frames


@pytest.mark.parametrize("preset", ["none", "low", "medium"])
def test_frames_read_back_exactly(preset: str) -> None:
    assert read_accuracy(LAYOUT_8, preset, 150, seed=1) == 1.0
    assert read_accuracy(LAYOUT_6, preset, 50, seed=2) == 1.0


def test_high_noise_frames_still_mostly_read() -> None:
    assert read_accuracy(LAYOUT_8, "high", 100, seed=3) >= 0.9
