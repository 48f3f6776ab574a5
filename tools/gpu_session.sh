#!/usr/bin/env bash
# The GPU work of a session, in one command, on an NVIDIA machine that reaches no package
# registry (the device tool's machines: torch, CuPy, scipy, pandas and pytest installed).
#
#   here:    make gpu-bundle                  # commit first; fills .gpu/ (git-ignored)
#   there:   bash tools/gpu_session.sh        # carry .gpu; results land in $OUT
#            GPU_SESSION_ASV_ONLY=1 bash tools/gpu_session.sh   # the asv slices alone
#
# Stages, most important first; each is bounded so that the whole stays inside
# GPU_SESSION_SECONDS (default 540) and a stage that does not fit is skipped, not cut:
#   1. tools/gpu_check.py: gradcheck (float64) and agreement with native on the GPU
#   2. the test suite's GPU tests
#   3. the gpu_check timing table, then asv on the CUDA cases, in slices, each saved when
#      it ends: conv forward+backward at 1024^2 and 2048^2 (the target), FFT
#      forward+backward from 256^2, memory, forward alone, backward alone, the small sizes
#   4. the reports from this commit's results, in reports/<machine>/, with gpu_check's output
# $OUT gets session.log, gpu_check.txt, gpu_tests.txt, gpu_timing.md and gpu-results.tar.gz (the reports
# folder and asv's results); unpack the tarball in the checkout and commit the reports.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/.gpu/out}
BUDGET=${GPU_SESSION_SECONDS:-540}
RESERVE=45  # kept back for the reports and the tarball
PY=${PYTHON:-python3}

stage() { echo; echo "== [${SECONDS}s] $*"; }
# seconds a stage may take: its own cap, or what is left before the reserve
allowance() {
    local left=$((BUDGET - RESERVE - SECONDS))
    left=$((left < $1 ? left : $1))
    echo $((left > 1 ? left : 1))
}

# asv on this interpreter (--python=same saves nothing without --set-commit-hash), with
# the full grid so that 2048^2 and every kernel run; CUDA cases picked by parameter.
CONV='bench_conv2d\.Conv2d'
FFT='bench_fft_abs\.FFTAbs'
BOTH="($CONV|$FFT)"
LARGE="'(native|scipy)', '(1024x1024|2048x2048|256x256|8x256x256)'"  # the last two: FFT only
SMALL="'(native|scipy)', '(16x16|64x64|127x127|255x255)'"
# asv.conf.json's env_nobuild (numpy/scipy at one thread), as NAME=VALUE words: asv sets
# them in the environments it builds, not in this interpreter's (--python=same). A value
# may be asv's one-value list; one that is no plain word (a space would split it into a
# command for env to run, null would be "None", several values a matrix) fails it.
thread_pins() {
    $PY -c 'import json5, re; pins = json5.load(open("asv.conf.json"))["matrix"]["env_nobuild"]
words = []
for name, value in pins.items():
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not (isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.,:+-]+", value)
            and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)):
        raise SystemExit(f"env_nobuild: {name}={value!r} is not a NAME=VALUE word")
    words.append(f"{name}={value}")
print(" ".join(words))'
}
asv_slice() {  # title, cap in seconds, benchmark regex
    local seconds pins
    seconds=$(allowance "$2")
    if [ "$have_repo" != 1 ]; then
        echo "skipped (asv: $1): no repository"
        return
    fi
    if [ "$seconds" -lt 20 ]; then
        echo "skipped (asv: $1): out of time"
        return
    fi
    if ! pins=$(thread_pins) || [ -z "$pins" ]; then
        echo "skipped (asv: $1): could not read the thread pins (env_nobuild) of asv.conf.json"
        return
    fi
    stage "asv: $1 (at most ${seconds}s; $pins)"
    # shellcheck disable=SC2086  # (pins: NAME=VALUE words)
    env $pins SCIPY_LAYERS_BENCH_FULL=1 timeout "$seconds" $PY -m asv run --python=same \
        --set-commit-hash "$commit" --machine "$machine" --show-stderr -b "$3" \
        || echo "asv exited with status $? (124: out of time, that slice is not saved)"
}
timing_table() {  # CUDA-event medians beside asv's figures, and cupyx's two forwards
    stage "timing table (tools/gpu_check.py --timing-only)"
    if [ "$(allowance 150)" -ge 20 ]; then
        timeout "$(allowance 150)" $PY tools/gpu_check.py --timing-only | tee "$OUT/gpu_timing.md"
    fi
}
run_slices() {
    timing_table  # first: the CuPy conv against native and against cupyx's FFT, per cell
    asv_slice "conv forward+backward, 1024^2 and 2048^2 (the target)" 150 \
        "^$CONV\\.time_forward_backward\\($LARGE, .*'cuda'\\)\$"
    asv_slice "FFT forward+backward, 256^2 and up" 90 \
        "^$FFT\\.time_forward_backward\\($LARGE, .*'cuda'\\)\$"
    asv_slice "memory" 150 "^${BOTH}Memory\\.\\w+\\($LARGE, .*'cuda'\\)\$"
    asv_slice "forward alone" 120 "^$BOTH\\.time_forward\\($LARGE, .*'cuda'\\)\$"
    asv_slice "backward alone" 120 "^${BOTH}Backward\\.\\w+\\($LARGE, .*'cuda'\\)\$"
    asv_slice "forward+backward, small sizes" 90 "^$BOTH\\.time_forward_backward\\($SMALL, .*'cuda'\\)\$"
}
if [ "${1:-}" = "--list-slices" ]; then  # the slices' titles and regexes (for the tests)
    asv_slice() { printf '%s\t%s\n' "$1" "$3"; }
    timing_table() { :; }
    run_slices
    exit 0
fi

mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1

stage "set-up"
if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/scipy-layers-site .gpu/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/scipy-layers-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the checkout's scipy_layers first
# asv's benchmark processes drop PYTHONPATH's folders from sys.path and add
# ASV_PYTHONPATH's: without it they cannot import an uninstalled scipy_layers.
export ASV_PYTHONPATH="$PYTHONPATH"
# asv needs the repository at the bundled commit: the device copies the working tree,
# and a .git there (if any) may hold an older HEAD, which would label the results.
have_repo=1
if ! command -v git >/dev/null || [ ! -f .gpu/repo.bundle ]; then
    if [ ! -d .git ]; then
        echo "no .git here, and no git or no .gpu/repo.bundle (make gpu-bundle): no asv" >&2
        have_repo=0
    fi
elif ! { { [ -d .git ] || git init -q .; } && git fetch -q .gpu/repo.bundle HEAD \
         && git update-ref refs/heads/main FETCH_HEAD && git symbolic-ref HEAD refs/heads/main \
         && git reset -q; }; then  # (asv.conf.json's branch is main)
    echo "could not restore the repository from .gpu/repo.bundle: no asv" >&2
    have_repo=0
fi
if [ "$have_repo" = 1 ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "warning: the working tree differs from HEAD $(git rev-parse --short HEAD):" \
         "asv labels these results with HEAD anyway" >&2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$PY - <<'PY'
import sys, numpy, scipy, torch
try:
    import cupy
    cupy_version = cupy.__version__
except Exception as error:  # reported, not fatal: gpu_check says what it means
    cupy_version = f"unusable ({type(error).__name__}: {error})"
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, "
      f"scipy {scipy.__version__}, cupy {cupy_version}, cuda {torch.cuda.is_available()}")
PY
machine=$($PY tools/asv_machine.py) || exit 1
commit=$([ "$have_repo" = 1 ] && git rev-parse HEAD || echo unknown)
echo "machine $machine, commit ${commit:0:8}"

finish() {  # the reports and the tarball; exits 1 when either failed
    local status=0
    stage "reports for $machine from this commit's results"
    tools/commit_report.sh "$PY" "$machine" || status=1
    mkdir -p "reports/$machine"
    for part in gpu_check.txt gpu_tests.txt gpu_timing.md; do
        if [ -f "$OUT/$part" ]; then cp "$OUT/$part" "reports/$machine/"; fi
    done
    tar -czf "$OUT/gpu-results.tar.gz" "reports/$machine" \
        $(ls -d ".asv/results/$machine" .asv/results/benchmarks.json 2>/dev/null) || status=1
    if [ "$status" = 0 ]; then
        echo "== [${SECONDS}s] done: $OUT/gpu-results.tar.gz"
    else
        echo "== [${SECONDS}s] FAILED: the reports or the tarball (above); $OUT/gpu-results.tar.gz holds what there is"
    fi
    exec >&- 2>&-  # let tee write the log's last lines before the script ends
    wait
    exit "$status"
}

if [ "${GPU_SESSION_ASV_ONLY:-}" = 1 ]; then  # a rerun for the timings alone
    timing_table() { :; }
    run_slices
    finish
fi

# The checks and the tests at once (neither times anything): the checks' log follows.
stage "gradcheck and agreement on the GPU (tools/gpu_check.py --no-timing), beside the tests"
timeout "$(allowance 240)" $PY tools/gpu_check.py --no-timing > "$OUT/gpu_check.txt" 2>&1 &
checks=$!

stage "the test suite's GPU tests"
# (tests/test_gpu_paths.py: every sample, layout, NaN/inf and the contract on CuPy)
timeout "$(allowance 240)" $PY -m pytest -q -p no:cacheprovider -n 8 \
    tests/test_gpu_dispatch.py tests/test_inputs.py tests/test_gpu_paths.py 2>&1 \
    | tee "$OUT/gpu_tests.txt" | grep -v -E '^(s|\.)+ +\[ *[0-9]+%\]$'
echo "pytest exit status ${PIPESTATUS[0]}"
wait "$checks"
echo "gpu_check exit status $?"
cat "$OUT/gpu_check.txt"

run_slices

finish
