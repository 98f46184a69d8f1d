"""How well and how fast does the camera display reader read SimLab's LCD, per noise preset?

Frame by frame: random display states (text of any shown character, decimal points, random
annunciators) are rendered as a SimLab camera renders them, spread over several camera mounts
(perspectives), and decoded with each mount's calibrated segment map (what the camera serves
as ``/layout.yaml``), and again with the layout map and the glass located in every frame.
A frame decoded right with confidence >= ``min_confidence`` is *correct*; decoded wrong with
that confidence it is *wrong_confident* (must be 0); anything else is *rejected* (unreadable
or below confidence: the reader asks for another frame). End to end: whole reads (K = 3
agreeing frames) over HTTP from a SimLab camera, and the frames per second that took.

Prints ``name=value`` lines, ``display_<preset>_<figure>``. Usage:
``python benchmarks/display_accuracy.py [--frames N] [--reads N] [--layout lcd_8digit]``.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from instruments.base import InstrumentTimeout
from instruments.display import CameraSegmentReader, SegmentDecoder, open_frame
from instruments.segment_map import SegmentMap
from simlab.camera import CameraServer
from simlab.lcd import (
    NOISE_LEVELS,
    SEVEN_SEGMENT_FONT,
    DisplayState,
    SegmentLayout,
    frame_geometry,
    render_png,
)

MOUNTS = 8  # camera perspectives (seeds) frames are spread over
MIN_CONFIDENCE = 0.5  # the reader's default


def random_state(rng: random.Random, layout: SegmentLayout) -> DisplayState:
    """A display state the layout can show: up to a full row of characters, any icons."""
    chars = [ch for ch in SEVEN_SEGMENT_FONT if ch != " "]
    cells = rng.randint(0, layout.digit_count)
    text = "".join(rng.choice(chars) + ("." if rng.random() < 0.2 else "") for _ in range(cells))
    icons = frozenset(name for name in layout.annunciators if rng.random() < 0.5)
    return DisplayState(text, icons)


@functools.cache
def _layout(name: str) -> SegmentLayout:
    return SegmentLayout.builtin(name)


def _render(job: tuple[str, str, int, int, DisplayState]) -> bytes:
    layout_name, preset, mount, frame, state = job
    layout = _layout(layout_name)
    level = NOISE_LEVELS[preset]
    return render_png(
        layout,
        state.segments(layout),
        noise=level.noise,
        blur=level.blur,
        skew=level.skew,
        seed=mount,
        frame=frame,
    )


def frames(
    layout_name: str, preset: str, count: int, seed: int
) -> Iterator[tuple[int, DisplayState, bytes]]:
    """(mount, state, PNG) for ``count`` frames, rendered by worker processes in batches
    that are done before the caller decodes them (so decoding is timed on an idle CPU)."""
    layout = SegmentLayout.builtin(layout_name)
    rng = random.Random(seed)
    jobs = [(layout_name, preset, i % MOUNTS, i, random_state(rng, layout)) for i in range(count)]
    with ProcessPoolExecutor() as pool:
        for first in range(0, count, _BATCH):
            batch = jobs[first : first + _BATCH]
            pngs = list(pool.map(_render, batch, chunksize=16))
            for job, png in zip(batch, pngs, strict=True):
                yield job[2], job[4], png


_BATCH = 256


def served_map(layout: SegmentLayout, preset: str, mount: int) -> SegmentMap:
    """The map a SimLab camera on this mount serves, loaded as a bench loads it."""
    level = NOISE_LEVELS[preset]
    view = layout.warped(frame_geometry(layout, level.skew, mount)) if level.skew else layout
    return SegmentMap.parse_yaml(view.to_yaml(), source=f"mount {mount}")


class Tally:
    def __init__(self) -> None:
        self.frames = self.correct = self.wrong_confident = self.rejected = 0
        self.seconds = 0.0

    def add(self, decoder: SegmentDecoder, png: bytes, want: DisplayState) -> None:
        start = time.perf_counter()
        decode = decoder.decode(open_frame(png))
        self.seconds += time.perf_counter() - start
        self.frames += 1
        if not decode.readable or decode.confidence < MIN_CONFIDENCE:
            self.rejected += 1
        elif decode.text == want.text and decode.annunciators == want.annunciators:
            self.correct += 1
        else:
            self.wrong_confident += 1

    def figures(self, prefix: str) -> dict[str, object]:
        return {
            f"{prefix}_frames": self.frames,
            f"{prefix}_accuracy": round(self.correct / max(self.frames, 1), 4),
            f"{prefix}_wrong_confident": self.wrong_confident,
            f"{prefix}_rejected": self.rejected,
            f"{prefix}_frames_per_s": round(self.frames / max(self.seconds, 1e-9), 1),
        }


def frame_figures(layout_name: str, preset: str, count: int) -> dict[str, object]:
    layout = SegmentLayout.builtin(layout_name)
    fixed = [SegmentDecoder(served_map(layout, preset, m)) for m in range(MOUNTS)]
    layout_map = SegmentMap.parse_yaml(layout.to_yaml(), source=layout_name)
    located = [SegmentDecoder(layout_map, locate_glass=True) for _ in range(MOUNTS)]
    by_map, by_locating = Tally(), Tally()
    seed = list(NOISE_LEVELS).index(preset)
    for mount, state, png in frames(layout_name, preset, count, seed):
        want = DisplayState.from_segments(layout, state.segments(layout))
        by_map.add(fixed[mount], png, want)
        by_locating.add(located[mount], png, want)
    return {
        **by_map.figures(f"display_{preset}"),
        **by_locating.figures(f"display_{preset}_locate"),
    }


class Meter:
    def __init__(self) -> None:
        self.state = DisplayState()
        self.lock = threading.Lock()

    def __call__(self) -> DisplayState:
        with self.lock:
            return self.state


def read_figures(layout_name: str, preset: str, reads: int) -> dict[str, object]:
    """Whole reads over HTTP: right, wrong (must be 0), refused, and the frame rate."""
    layout = SegmentLayout.builtin(layout_name)
    meter = Meter()
    rng = random.Random(7)
    right = wrong = refused = 0
    with CameraServer(layout, meter, noise=preset, seed=11) as camera:
        smap = SegmentMap.parse_yaml(camera.frame_layout_yaml, source="camera")
        with CameraSegmentReader(
            camera.url, segment_map=smap, timeout_s=3.0, max_frames=30
        ) as reader:
            start = time.perf_counter()
            for _ in range(reads):
                state = random_state(rng, layout)
                with meter.lock:
                    meter.state = state
                want = DisplayState.from_segments(layout, state.segments(layout))
                try:
                    reading = reader.read()
                except InstrumentTimeout:
                    refused += 1
                    continue
                if (reading.text, reading.annunciators) == (want.text, want.annunciators):
                    right += 1
                else:
                    wrong += 1
            elapsed = time.perf_counter() - start
            served = camera.frames
    prefix = f"display_{preset}_read"
    return {
        f"{prefix}s": reads,
        f"{prefix}_right": right,
        f"{prefix}_wrong": wrong,
        f"{prefix}_refused": refused,
        f"{prefix}_frames_per_s": round(served / elapsed, 1),
        f"{prefix}_seconds_per_read": round(elapsed / reads, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per noise preset")
    parser.add_argument("--reads", type=int, default=100, help="HTTP reads per noise preset")
    parser.add_argument("--layout", default="lcd_8digit", help="built-in SimLab layout")
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same arguments
    wrong = 0
    for preset in NOISE_LEVELS:
        figures = {
            **frame_figures(args.layout, preset, args.frames),
            **read_figures(args.layout, preset, args.reads),
        }
        for name, value in figures.items():
            print(f"{name}={value}", flush=True)
            if name.endswith(("_wrong_confident", "_read_wrong")):
                wrong += int(value)  # type: ignore[call-overload]
    print(f"display_wrong_confident_total={wrong}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
