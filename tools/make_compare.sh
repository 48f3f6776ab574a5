#!/usr/bin/env bash
# `make compare` and `make gate`: tools/compare_commits.py with the make variables BASE,
# BENCH, ROUNDS, REPEAT and FRESH, read from the environment (the Makefile exports them as
# typed), so that no shell parses a value: quotes, spaces, $ and ; reach the tool as given.
#   tools/make_compare.sh PYTHON [--gate]
# An empty variable is not given. FRESH: 1, yes or true times both commits again; empty,
# 0, no or false does not; anything else is a usage error (exit 2). Its status is the
# tool's; make gate exits 2 on any failure of it, so a failed gate names the tool's own
# status (0 passed, 1 a confirmed regression, 2 an error) on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -lt 1 ]; then
    echo "usage: ${0##*/} PYTHON [--gate]" >&2
    exit 2
fi
py=$1
shift
args=("$@")
gate=0
if [ "${1-}" = "--gate" ]; then
    gate=1
fi
case "${FRESH-}" in
    1 | [Yy][Ee][Ss] | [Tt][Rr][Uu][Ee]) args+=(--fresh) ;;
    "" | 0 | [Nn][Oo] | [Ff][Aa][Ll][Ss][Ee]) ;;
    *)
        printf 'make: FRESH=%q: give 1, yes or true to time both commits again; 0, no, false or nothing not to\n' \
            "$FRESH" >&2
        exit 2
        ;;
esac
# --option=value: a value that starts with "-" stays the option's value
[ -n "${BASE-}" ] && args+=("--base=$BASE")
[ -n "${ROUNDS-}" ] && args+=("--rounds=$ROUNDS")
[ -n "${REPEAT-}" ] && args+=("--repeat=$REPEAT")
[ -n "${BENCH-}" ] && args+=("--bench=$BENCH")

status=0
"$py" tools/compare_commits.py "${args[@]}" || status=$?
if [ "$gate" = 1 ] && [ "$status" -ne 0 ]; then
    # make itself exits 2 whenever a recipe fails: its status cannot tell 1 from 2
    case "$status" in
        1) what="a confirmed slowdown or gradient regression" ;;
        2) what="a usage or report error, or nothing could be compared" ;;
        *) what="an unexpected failure" ;;
    esac
    echo "make gate: the gate's status is $status ($what); make exits 2 on any failure," \
        "so for the gate's own 0/1/2 run .venv/bin/python tools/compare_commits.py --gate" >&2
fi
exit "$status"
