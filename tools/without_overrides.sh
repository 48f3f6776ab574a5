#!/usr/bin/env bash
# Reference timings (make results, targets, method-choice, gemm-orientation) run without
# the BLAS kernel overrides a workplace may set (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE for
# old OpenBLAS builds; MKL_DEBUG_CPU_TYPE, MKL_ENABLE_INSTRUCTIONS: the overrides
# tools/record_environment.py records): they would time another kernel than users get.
# Each one dropped is named on stderr. Executed, this runs its arguments so; sourced, it
# drops them from the sourcing shell. `make bench` keeps, and records, whatever is set.
if [ -z "${BASH_VERSION-}" ]; then  # sh (dash) cannot read what follows: it is bash's
    # sh has no BASH_SOURCE: executed, $0 is this file (or a link to it, by any name);
    # sourced, the sourcing shell or script. zsh alone sets $0 to the file it sources
    # (its ZSH_EVAL_CONTEXT then says "file"): exec there replaced the user's shell.
    case "${ZSH_EVAL_CONTEXT-}" in
        *file*) ;;
        *) case "${0##*/}:$(readlink -f -- "$0" 2>/dev/null)" in
               without_overrides.sh:* | *:*/without_overrides.sh) exec bash -- "$0" "$@" ;;
           esac ;;
    esac
    echo "without_overrides.sh: sourced from a shell other than bash; source it" \
         "from bash, or run it: sh without_overrides.sh COMMAND" >&2
    return 2
fi
if [ "${BASH_SOURCE[0]-}" = "$0" ]; then
    if [ "${1-}" = "--" ]; then  # (as env and nice take it)
        shift
    fi
    if [ "$#" -eq 0 ]; then
        echo "usage: ${0##*/} [--] COMMAND [ARGUMENT...]" >&2
        exit 2
    fi
fi
_drop_kernel_overrides() {
    local name note="not used: reference timings run on the kernel the BLAS picks itself"
    for name in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE MKL_DEBUG_CPU_TYPE MKL_ENABLE_INSTRUCTIONS; do
        if [ -n "${!name+set}" ]; then  # %q: a value with a newline stays on one line
            printf 'note: %s=%q %s (make bench times with it)\n' "$name" "${!name}" "$note" >&2
            unset "$name"
        fi
    done
}
_drop_kernel_overrides
unset -f _drop_kernel_overrides
if [ "${BASH_SOURCE[0]-}" = "$0" ]; then
    exec -- "$@"
fi
