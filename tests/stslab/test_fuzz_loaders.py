"""Every loader, fed damaged files (hypothesis): a scenario file, a pack manifest, a DUT
profile, a bench file, a job file either loads or raises its own documented error, whose
every line names the file (and, where there is one, the line and key); none hangs or
raises anything else. ``pytest --hypothesis-profile fuzz`` runs the long version."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dut.profile import MeterProfile, ProfileError
from stslab.bench import BenchError, load_bench, parse_bench
from stslab.job import JobError, load_job
from stslab.pack import PackError, read_manifest, verify_pack
from stslab.scenario import ScenarioError, load_scenarios, parse_scenarios
from tests.fuzzing import damaged, fuzz_settings, within

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = (REPO / "suites" / "sts-core" / "02-tid.yaml").read_text()
MANIFEST = (REPO / "suites" / "sts-core" / "manifest.yaml").read_text()
PROFILE = (REPO / "dut" / "profiles" / "meter_default.yaml").read_text()
BENCH = (REPO / "examples" / "bench-hardware.yaml").read_text()
JOB = (REPO / "examples" / "job.yaml").read_text()
LIMIT_S = 10.0  # far beyond any loader's time on a real file
# The folder fixture is reused across cases: each case writes its file anew.
FUZZ = fuzz_settings(modest=30)


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="stslab-fuzz-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def refused_or_loaded(load: Callable[[], object], error: type[Exception], source: str) -> None:
    """``load()`` returns, or raises ``error`` with every line naming ``source``."""
    with within(LIMIT_S, f"loading {source}"):
        try:
            load()
        except error as exc:
            message = str(exc)
            assert message, f"{type(exc).__name__} without a message"
            for line in message.splitlines():
                assert line.startswith(f"{source}:"), f"a line that names no place: {line!r}"


@FUZZ
@given(damaged(SCENARIOS))
@example('? "\\N"\n: null\n')  # a key holding a line break (U+0085): the message stays one line
def test_scenario_files(text: str) -> None:
    refused_or_loaded(lambda: parse_scenarios(text, "pack/02-tid.yaml"), ScenarioError,
                      "pack/02-tid.yaml")  # fmt: skip


@FUZZ
@given(damaged(PROFILE))
@example('? "\\r"\n: null\n')
def test_dut_profiles(text: str) -> None:
    refused_or_loaded(lambda: MeterProfile.parse_yaml(text, source="meter.yaml"), ProfileError,
                      "meter.yaml")  # fmt: skip


@FUZZ
@given(damaged(BENCH))
def test_bench_files(text: str) -> None:
    refused_or_loaded(lambda: parse_bench(text, "bench.yaml"), BenchError, "bench.yaml")


@FUZZ
@given(damaged(JOB))
def test_job_files(folder: Path, text: str) -> None:
    path = folder / "job.yaml"
    path.write_text(text)
    refused_or_loaded(lambda: load_job(path), JobError, str(path))


@FUZZ
@given(damaged(MANIFEST))
@example(text='"\\x1E": null\n')
def test_pack_manifests(folder: Path, text: str) -> None:
    (folder / "manifest.yaml").write_text(text)
    (folder / "02-tid.yaml").write_text(SCENARIOS)
    path = str(folder / "manifest.yaml")
    refused_or_loaded(lambda: read_manifest(folder), PackError, path)
    refused_or_loaded(lambda: verify_pack(folder), PackError, path)


@FUZZ
@given(st.sampled_from(["scenario", "profile", "bench", "job", "manifest"]),
       st.binary(max_size=300))  # fmt: skip
def test_files_that_are_not_text(folder: Path, kind: str, data: bytes) -> None:
    """Bytes that are no UTF-8 text (a binary file given by mistake)."""
    name = "manifest.yaml" if kind == "manifest" else f"{kind}.yaml"
    path = folder / name
    path.write_bytes(data)
    load, error = {
        "scenario": (lambda: load_scenarios(path), ScenarioError),
        "profile": (lambda: MeterProfile.from_yaml(path), ProfileError),
        "bench": (lambda: load_bench(path), BenchError),
        "job": (lambda: load_job(path), JobError),
        "manifest": (lambda: read_manifest(folder), PackError),
    }[kind]
    refused_or_loaded(load, error, str(path))


@pytest.mark.parametrize(
    "text",
    [
        "name: &a [*a]\n",  # an alias inside the value it names
        "a: &x {b: *x}\n",
        # "billion laughs": nine aliases per level, seven levels
        "l0: &l0 [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 8)),
    ],
    ids=["self-list", "self-map", "laughs"],
)
def test_aliases_that_never_end_are_refused_at_once(text: str) -> None:
    with within(LIMIT_S, "loading the bench file"), pytest.raises(BenchError) as info:
        parse_bench(text, "bench.yaml")
    assert str(info.value).startswith("bench.yaml:1: ")
    assert "alias" in str(info.value)
