"""Where ``scipy-layers-report`` and ``python -m scipy_layers.reports`` start: the command
imported under a guard, so that an install broken beneath it (pandas or numpy that no
longer import) ends in status 2 with its traceback, never Python's 1, which ``--gate``
gives a confirmed regression. Imports nothing that could fail."""
import sys
import traceback

PROG = "scipy-layers-report"


def main(argv: list[str] | None = None) -> int:
    try:
        from .cli import main as command
    except Exception:  # noqa: BLE001 -- (any failure to start is an error, status 2)
        traceback.print_exc()
        print(f"{PROG}: error: cannot start (the traceback above); exit status 2, not a "
              "gate finding", file=sys.stderr)
        return 2
    return command(argv)
