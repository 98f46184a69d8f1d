"""Hypothesis profiles. ``default``: what every run of the suite uses. ``fuzz``: the fuzzing
tests' long run, ``pytest --hypothesis-profile fuzz`` (``STSLAB_FUZZ_EXAMPLES`` cases per
test, 1000 unless set; ``benchmarks/fuzz_inputs.py`` runs it and counts the cases)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("STSLAB_FUZZ_EXAMPLES", "1000")),
    deadline=None,  # the tests' own time limit says what hangs
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
