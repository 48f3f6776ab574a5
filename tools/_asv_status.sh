# Sourced by tools/run_benchmarks.sh (`make bench`) and tools/reference_results.sh
# (`make results`), after they set ASV and machine: when a run of asv lets them go on.
# asv exits 2 when benchmarks failed: go on to record, calibrate and report (the failures
# show there as "failed"), then exit 2. Any other failure (its own error, Ctrl-C: 1; a
# signal) stops at once, before the reports are rewritten from partial results.
asv_status=0

# run_asv <asv run arguments...>: `asv run` on this machine; stops the script unless
# asv exited 0 or 2.
run_asv() {
    local rc=0
    "$ASV" run --machine "$machine" "$@" || rc=$?
    if [ "$rc" -eq 2 ]; then
        asv_status=2
    elif [ "$rc" -ne 0 ]; then
        echo "asv run failed (status $rc): stopped before the reports were written" >&2
        exit "$rc"
    fi
}

# finish_run <report status>: names failed benchmarks and a failed report, then exits
# with the report's status if it failed, else with asv's.
finish_run() {
    local report_status=$1
    if [ "$asv_status" -ne 0 ]; then
        echo "some benchmarks failed (asv status $asv_status; see 'failed' in the reports)" >&2
    fi
    if [ "$report_status" -ne 0 ]; then
        echo "the report exited with status $report_status (see its error above)" >&2
        exit "$report_status"
    fi
    exit "$asv_status"
}
