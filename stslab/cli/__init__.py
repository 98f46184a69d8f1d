"""The ``stslab`` command line.

Every bad argument is one line on stderr naming the argument, exit status 2. The token
commands are a stable, scriptable contract.
"""

from __future__ import annotations

import sys

import typer

from sts.errors import StsError
from stslab.cli.bench import app as bench_app
from stslab.cli.certify import certify
from stslab.cli.errors import ArgumentError
from stslab.cli.explore import explore_command
from stslab.cli.lab import app as lab_app
from stslab.cli.pack import app as pack_app
from stslab.cli.report import report, verify
from stslab.cli.robot import robot_command
from stslab.cli.selftest import selftest_command
from stslab.cli.sim import sim
from stslab.cli.token import app as token_app

app = typer.Typer(
    name="stslab",
    help="Certification test-lab harness for STS prepayment meters (IEC 62055-41/-51).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(token_app, name="token")
app.command("sim")(sim)
app.add_typer(bench_app, name="bench")
app.command("certify")(certify)
app.command("selftest")(selftest_command)
app.add_typer(pack_app, name="pack")
app.command("report")(report)
app.command("verify")(verify)
app.command("robot")(robot_command)
app.command("explore")(explore_command)
app.add_typer(lab_app, name="lab")


def _family(name: str) -> tuple[type[BaseException], ...]:
    """Click's exception class ``name`` as click itself and as Typer's own copy define it."""
    found: set[type[BaseException]] = set()
    try:  # Typer may use click itself or its own copy of it: catch both
        import click

        found.add(getattr(click.exceptions, name))
    except ImportError:
        pass
    for cls in typer.BadParameter.__mro__ + typer.Abort.__mro__ + typer.Exit.__mro__:
        if cls.__name__ == name:
            found.add(cls)
    return tuple(found)


_USAGE = _family("UsageError")
_CLICK = _family("ClickException")
_ABORT = _family("Abort")
_EXIT = _family("Exit")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``stslab`` console script."""
    try:
        result = app(args=argv, prog_name="stslab", standalone_mode=False)
    except ArgumentError as exc:
        # A file with several problems still makes one line (each named with its place).
        print(f"stslab: error: {'; '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    except StsError as exc:
        print(f"stslab: error: {exc}", file=sys.stderr)
        return 2
    except _EXIT as exc:
        return int(getattr(exc, "exit_code", 0))
    except _ABORT:
        print("stslab: aborted", file=sys.stderr)
        return 130
    except _USAGE as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())  # type: ignore[attr-defined]
            return 2
        print(f"stslab: error: {_one_line(exc.format_message())}", file=sys.stderr)  # type: ignore[attr-defined]
        return 2
    except _CLICK as exc:
        print(f"stslab: error: {_one_line(exc.format_message())}", file=sys.stderr)  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 1))
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
