"""The words of an environment variable that holds a list of arguments (ASV_ARGS for
`make bench`; TARGETS_ARGS, METHOD_CHOICE_ARGS, GEMM_ORIENTATION_ARGS for their make
targets), split as a POSIX shell splits a command line, but with nothing expanded or run:
quotes and backslashes group ("-b 'a b'" is two words, the second "a b"), while $, *, ~,
; and the like stay as typed. Printed shell-quoted on one line, for the caller's
``eval "set -- $words"``; a quote left open is a usage error (exit 2, one line)."""
from __future__ import annotations

import argparse
import os
import re
import shlex
import sys


def split(name: str) -> list[str]:
    """The words of the environment variable ``name`` (none where it is unset or empty);
    ValueError where a quote is left open."""
    return shlex.split(os.environ.get(name, ""))


def main(argv: list[str] | None = None) -> int:
    # (self-contained: make runs it beside the shell scripts alone, as the tests' copies
    # of tools/ do; help_text.description's rule, its first paragraph ending in no colon)
    parser = argparse.ArgumentParser(description=__doc__ and __doc__.split("\n\n")[0])
    parser.add_argument("name", help="the environment variable, e.g. ASV_ARGS")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name):
        parser.error(f"{args.name!r} is not a variable name")
    try:
        words = split(args.name)
    except ValueError as exc:  # shlex: "No closing quotation", "No escaped character"
        print(f"error: {args.name}={os.environ[args.name]!r}: {exc}; its words are split as a "
              "shell splits them (quote a word with spaces: 'a b')", file=sys.stderr)
        return 2
    print(" ".join(shlex.quote(word) for word in words))
    return 0


if __name__ == "__main__":
    sys.exit(main())
