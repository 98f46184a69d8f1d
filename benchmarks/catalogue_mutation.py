"""The catalogue's mutation score: how many small faults in the reference meter it catches.

mutmut (the ``mutation`` extra; its settings are ``[tool.mutmut]`` in ``pyproject.toml``)
makes mutants of the meter: every method of ``sts/meter.py``'s ``ReferenceMeter`` (the token
process) and the meter rules of ``simlab/meter.py`` listed in :data:`SIMMETER_RULES` (load
switch, lockout, keypad entry, what the display shows and for how long). Left out of
``sts/meter.py``: what checks a declaration rather than keeps a rule (``MeterParameters``'
checks and its ``kt_changes`` default, which a DUT profile always replaces with its own
checked declaration), ``MeterState``'s debugging text and ``ReferenceMeter.snapshot`` (a
copy of the state for observers and tests, which no rule and no harness path uses); left out
of ``simlab/meter.py``'s rules (``# pragma: no mutate``): the entry count of SimLab's state
dump and the transcript hooks called after each entry, which no meter has. For each mutant it runs
:func:`test_catalogue_keeps_its_verdicts`, the kill check in this file: the whole catalogue
on SimLab's virtual-time bench, on the ``default``, ``ea11`` and ``ea09`` profiles. A mutant is
*killed* when a scenario that the unmutated meter passes ends FAIL or ERROR (the catalogue's
verdicts change), *timed out* when its run hangs past mutmut's limit, and *survives*
otherwise; a mutant that breaks the meter's import is killed like any other (the campaign
cannot open). A survivor is either listed in ``mutation_equivalent.yaml`` with the reason
no test of the meter's behaviour can tell it from the original (kind ``equivalent``) or no
bench can see where it differs (kind ``beyond_bench``: one exact instant, a double's last
bit, a thousandth below the last digit shown, a key held across a loss of supply), or it
needs a scenario.

Prints ``name=value`` lines: ``mutants_made`` (in scope), ``mutants_run`` (by this run and
earlier ones), ``mutants_not_run``, ``killed``, ``survived``, ``timeout``, ``equivalent``
and ``beyond_bench`` (survivors in the list, by kind), ``score`` (killed and timed out over
the mutants run less the listed survivors of both kinds), ``score_beyond_bench_counted``
(the same with the beyond-bench survivors counted as survivors), then the listed survivors
with their kind and reason and any survivor without one (its diff and mutmut's name for it,
to write a scenario or a reason for).

A killed mutant costs the catalogue up to the first scenario whose verdict changes; a
survivor costs the whole catalogue on every profile (5 to 10 s of one core each; the run's
throw-away journal is kept in memory). By default a sample is run, the mutants whose number
(mutmut's, per function) ends in a digit of ``--sample`` (default ``0``: about one in ten);
``--all`` runs every mutant (hours on a shared 2-core machine). mutmut keeps its results in
``mutants/``: a run that stops resumes with the mutants not yet run; ``--fresh`` starts over,
``--report`` only prints the figures of the results so far, ``--survivors`` also runs
the survivors not listed as equivalent again (after a scenario was added for them).
``--workers`` (default 1): how many mutants run at a time.

Usage: ``python benchmarks/catalogue_mutation.py [--sample DIGITS | --all] [--survivors]
[--fresh] [--report] [--workers N]``.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
EQUIVALENT = Path(__file__).resolve().with_name("mutation_equivalent.yaml")
#: The profiles the catalogue runs on for each mutant: what one cannot show, another can
#: (ea09: the legacy DES key and a key expiry number other than "never" from the factory).
PROFILES = ("default", "ea11", "ea09")
#: The unmutated meter's verdicts, written where the kill check runs (mutmut's folder).
BASELINE = "catalogue-baseline.json"

#: SimMeter's meter rules: the methods of simlab/meter.py in scope.
SIMMETER_RULES = (
    # the passage of time: entry time-out, message and test display ends, lockout end
    "_update_locked",
    # load switch: zero credit, maximum power limit, the class-1 test, reconnection
    "_account_energy",
    "credit_wh",
    "_credit_rule",
    "_at_least_real",
    "_lasting",
    "opens_at_zero_credit",
    "enforces_power_limit",
    "_mpl_rule",
    "_apply_relay",
    "_reconnect_by_key",
    "_start_load_switch_test",
    # keypad entry and lockout
    "key_down",
    "key_up",
    "drops_key",
    "_keypress",
    "_process",
    "_count_for_lockout",
    "_apply_effect",
    # what the display shows, and for how long
    "display_text_for",
    "_show_result",
    "_queue_tests",
    "_test_display",
    "_advance_tests",
    "_fit",
    "_annunciators",
    "_display_locked",
    "_credit_display",
)
#: Per file mutated, mutmut's names of the mutants in scope.
SCOPE = {
    "sts/meter.py": ("sts.meter.xǁReferenceMeterǁ*__mutmut_*",),
    "simlab/meter.py": tuple(
        f"simlab.meter.xǁSimMeterǁ{name}__mutmut_*" for name in SIMMETER_RULES
    ),
}
KILLED, SURVIVED, TIMEOUT = "killed", "survived", "timeout"
#: Where each run's throw-away journal and record go: a memory file system where there is one,
#: since the journal's fsync per record is most of a virtual-time campaign's wall time.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


# -- the kill check (run by mutmut for each mutant) ----------------------------------------


def catalogue_outcomes(dut: str, expected: dict[str, str] | None = None) -> dict[str, str]:
    """Each scenario's outcome on virtual time for profile ``dut``. With ``expected`` (the
    unmutated verdicts), stops at the first scenario that passed there and fails here."""
    from stslab.session import Campaign, CampaignConfig

    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="stslab-mutation-", dir=SCRATCH) as out:
        config = CampaignConfig(bench="virtual", dut=dut, out=Path(out))
        with Campaign(config) as campaign:
            for scenario in campaign.pending():
                outcome = campaign.run_scenario(scenario).outcome.value
                outcomes[scenario.id] = outcome
                if expected is not None and _changed(expected.get(scenario.id), outcome):
                    break
    return outcomes


def _changed(was: str | None, now: str) -> bool:
    # A scenario the baseline does not know (the pack changed since) judges nothing.
    return was is not None and now in ("FAIL", "ERROR") and was != now


def _baseline() -> dict[str, dict[str, str]]:
    path = Path(BASELINE)
    if not path.exists():
        # Only the unmutated meter may write it (mutmut's stats and clean runs come first).
        assert os.environ.get("MUTANT_UNDER_TEST", "") in ("", "stats"), "no baseline verdicts"
        path.write_text(json.dumps({dut: catalogue_outcomes(dut) for dut in PROFILES}))
    return json.loads(path.read_text())


def test_catalogue_keeps_its_verdicts() -> None:
    """The kill check: on every profile, no scenario the unmutated meter passes fails."""
    baseline = _baseline()
    for dut in PROFILES:
        now = catalogue_outcomes(dut, baseline[dut])
        changed = {k: f"{baseline[dut].get(k)} -> {v}" for k, v in now.items()
                   if _changed(baseline[dut].get(k), v)}  # fmt: skip
        assert not changed, f"{dut}: {changed}"


# -- mutants, results and the equivalent list ----------------------------------------------


def _meta(path: str) -> dict[str, int | None]:
    meta = MUTANTS / f"{path}.meta"
    if not meta.exists():
        return {}
    return json.loads(meta.read_text())["exit_code_by_key"]


def in_scope() -> dict[str, int | None]:
    """Mutant name -> mutmut's exit code (None: not run yet), for the mutants in scope."""
    from fnmatch import fnmatchcase

    out: dict[str, int | None] = {}
    for path, patterns in SCOPE.items():
        for name, code in _meta(path).items():
            if any(fnmatchcase(name, p) for p in patterns):
                out[name] = code
    return out


def status(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code

    return {"killed": KILLED, "survived": SURVIVED, "timeout": TIMEOUT}.get(
        status_by_exit_code[code], status_by_exit_code[code]
    )


def _function_sources(path: str) -> dict[str, str]:
    """Function (mangled name, mutant suffix included) -> its source in mutmut's file."""
    source = (MUTANTS / path).read_text()
    out: dict[str, str] = {}
    pattern = re.compile(r"^\s*(?:def|class) (\w+)", re.M)
    matches = list(pattern.finditer(source))
    for m, nxt in zip(matches, [*matches[1:], None], strict=True):
        end = nxt.start() if nxt else len(source)
        lines = source[m.start() : end].splitlines()
        body = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        while body and body[-1].lstrip().startswith("@"):  # the next function's decorator
            body.pop()
        out[m.group(1)] = "\n".join(body)
    return out


def mutant_diffs(names: list[str]) -> dict[str, tuple[str, str]]:
    """Mutant name -> (function, the changed lines as ``-old`` / ``+new``)."""
    sources: dict[str, dict[str, str]] = {}
    out: dict[str, tuple[str, str]] = {}
    for name in names:
        module, _, mangled = name.partition(".x")
        mangled = "x" + mangled
        path = next(p for p in SCOPE if p.removesuffix(".py").replace("/", ".") == module)
        funcs = sources.setdefault(path, _function_sources(path))
        base = mangled.rsplit("__mutmut_", 1)[0]
        original = funcs.get(f"{base}__mutmut_orig", "")
        mutant = funcs.get(mangled, "")
        lines = [
            ln.rstrip()
            for ln in difflib.unified_diff(
                _plain(original, f"{base}__mutmut_orig"), _plain(mutant, mangled), lineterm="", n=0
            )
            if ln[:1] in "-+" and not ln.startswith(("---", "+++"))
        ]
        qualname = base[2:] if base.startswith("x_") else base[2:].replace("ǁ", ".")
        function = f"{module}.{qualname}"
        out[name] = (function, "\n".join(lines))
    return out


def _plain(source: str, name: str) -> list[str]:
    """A function's lines with mutmut's names and markers taken out, whitespace collapsed."""
    source = source.replace(name, "f").replace("  # type: ignore # mutmut generated", "")
    return [" ".join(ln.split()) for ln in source.splitlines()[1:]]


def mutant_key(function: str, diff: str) -> str:
    """A survivor's key in the equivalent list: its function and what it changes (stable
    when mutmut numbers its mutants anew)."""
    digest = hashlib.sha256(f"{function}\n{diff}".encode()).hexdigest()[:10]
    return f"{function} {digest}"


#: The kinds of listed survivor: ``equivalent`` (no input tells it from the original) and
#: ``beyond_bench`` (it differs only where no bench can look: at one exact instant, in the
#: last bit of a double, a thousandth below the last digit shown, or for a key held across a
#: loss of supply, which no scenario step can do).
KINDS = ("equivalent", "beyond_bench")


def load_equivalent() -> dict[str, tuple[str, str]]:
    """Listed survivor key -> (kind, why)."""
    import yaml

    if not EQUIVALENT.exists():
        return {}
    data = yaml.safe_load(EQUIVALENT.read_text()) or {}
    out: dict[str, tuple[str, str]] = {}
    for key, entry in data.items():
        kind = str(entry.get("kind", "equivalent"))
        if kind not in KINDS:
            raise SystemExit(f"{EQUIVALENT.name}: {key}: kind {kind!r} is not one of {KINDS}")
        out[str(key)] = (kind, str(entry["why"]))
    return out


# -- the run -------------------------------------------------------------------------------


def run_mutmut(names: list[str], workers: int) -> int:
    """``mutmut run`` on ``names`` (exact names or patterns) in the project's folder."""
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
    command = [mutmut, "run", "--max-children", str(workers), *names]
    return subprocess.call(command, cwd=ROOT)


def select(results: dict[str, int | None], sample: str | None) -> list[str]:
    """The mutants to run: those not run yet (of the sample)."""
    chosen = [n for n in results if sample is None or n[-1] in sample]
    return [n for n in chosen if results[n] is None]


def unexplained_survivors(results: dict[str, int | None]) -> list[str]:
    """The survivors not in the equivalent list (to run again after adding scenarios)."""
    survivors = [n for n, c in results.items() if c is not None and status(c) == SURVIVED]
    equivalent = load_equivalent()
    diffs = mutant_diffs(survivors)
    return [n for n in survivors if mutant_key(*diffs[n]) not in equivalent]


def report(results: dict[str, int | None]) -> None:
    run = {n: status(c) for n, c in results.items() if c is not None}
    counts = Counter(run.values())
    survivors = sorted(n for n, s in run.items() if s == SURVIVED)
    diffs = mutant_diffs(survivors)
    equivalent = load_equivalent()
    explained = {n: equivalent[mutant_key(*diffs[n])] for n in survivors
                 if mutant_key(*diffs[n]) in equivalent}  # fmt: skip
    scored = len(run) - len(explained)
    caught = counts[KILLED] + counts[TIMEOUT]
    print(f"mutants_made={len(results)}")
    print(f"mutants_run={len(run)}")
    print(f"mutants_not_run={len(results) - len(run)}")
    for name in (KILLED, SURVIVED, TIMEOUT):
        print(f"{name}={counts[name]}")
    for name in sorted(set(counts) - {KILLED, SURVIVED, TIMEOUT}):
        print(f"{name.replace(' ', '_')}={counts[name]}")
    kinds = Counter(kind for kind, _why in explained.values())
    print(f"equivalent={kinds['equivalent']}")
    print(f"beyond_bench={kinds['beyond_bench']}")
    score = 100 * caught / scored if scored else 0.0
    print(
        f"score={score:.1f}% ({caught} of {scored} non-equivalent mutants killed; "
        f"listed survivors of both kinds left out)"
    )
    strict = len(run) - kinds["equivalent"]
    strict_score = 100 * caught / strict if strict else 0.0
    print(
        f"score_beyond_bench_counted={strict_score:.1f}% ({caught} of {strict}: the "
        f"beyond-bench survivors counted as survivors)"
    )
    for name in survivors:
        function, diff = diffs[name]
        key = mutant_key(function, diff)
        kind, why = explained.get(name, ("SURVIVED", ""))
        shown = diff.replace("\n", " | ")
        print(f"{kind}: {key}: {shown}  [{name}]")
        if why:
            print(f"    why: {why}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="0", help="run the mutants whose number ends so")
    parser.add_argument("--all", action="store_true", help="run every mutant")
    parser.add_argument("--fresh", action="store_true", help="forget earlier results")
    parser.add_argument("--report", action="store_true", help="print the results so far")
    parser.add_argument("--workers", type=int, default=1, help="mutants at a time")
    parser.add_argument(
        "--survivors", action="store_true", help="run the survivors not listed as equivalent again"
    )
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same arguments
    sample = None if args.all else args.sample
    if importlib.util.find_spec("mutmut") is None:
        print("catalogue_mutation: mutmut is not installed (pip install -e '.[mutation]')",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.fresh and MUTANTS.exists():
        shutil.rmtree(MUTANTS)
    if not args.report:
        results = in_scope()
        if not results:  # first run: mutmut makes the mutants, then runs the sample's
            tail = "" if sample is None else f"[{sample}]"
            names = [p + tail for patterns in SCOPE.values() for p in patterns]
        else:
            names = select(results, sample)
            if args.survivors:
                names = unexplained_survivors(results) + names
        if names:
            MUTANTS.mkdir(exist_ok=True)
            (MUTANTS / BASELINE).unlink(missing_ok=True)
            code = run_mutmut(names, args.workers)
            if code:
                print(
                    f"catalogue_mutation: mutmut run ended with exit code {code}", file=sys.stderr
                )
    results = in_scope()
    if not results:
        print("catalogue_mutation: no mutants (is the mutation extra installed?)", file=sys.stderr)
        return 2
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
