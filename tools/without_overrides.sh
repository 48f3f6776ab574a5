#!/usr/bin/env bash
# Reference timings (make results, targets, method-choice, gemm-orientation) run without
# the OpenBLAS kernel overrides a workplace may set for old OpenBLAS builds
# (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE): they would time another kernel than users get.
# Each one dropped is named on stderr. Executed, this runs its arguments so; sourced, it
# drops them from the sourcing shell. `make bench` keeps, and records, whatever is set.
for _name in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do
    if [ -n "${!_name+set}" ]; then
        echo "note: $_name=${!_name} not used: reference timings run on the kernel" \
             "OpenBLAS picks itself (make bench times with it)" >&2
        unset "$_name"
    fi
done
unset _name
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    exec "$@"
fi
