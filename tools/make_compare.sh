#!/usr/bin/env bash
# `make compare` and `make gate`: tools/compare_commits.py with the make variables BASE,
# BENCH, ROUNDS, REPEAT and FRESH, read from the environment (the Makefile exports them as
# typed), so that no shell parses a value: quotes, spaces, $ and ; reach the tool as given.
#   tools/make_compare.sh PYTHON [--gate]
# An empty variable is not given. FRESH: 1, yes or true times both commits again; empty,
# 0, no or false does not; anything else is a usage error (exit 2).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -lt 1 ]; then
    echo "usage: ${0##*/} PYTHON [--gate]" >&2
    exit 2
fi
py=$1
shift
args=("$@")
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

exec "$py" tools/compare_commits.py "${args[@]}"
