#!/usr/bin/env bash
# Runs each libFuzzer target for FUZZ_SECONDS (`make fuzz` builds them first; see Tests/Fuzz/README.md).
#
# Each target starts from its checked-in seed corpus (Tests/Fuzz/corpus/<target>: real traffic, configs, alerts,
# and every input that once found a bug), and keeps what it discovers in .build-fuzz/corpus/<target>, so a
# later run goes on from there. Crashes, hangs, leaks and huge allocations land in .build-fuzz/findings/<target>/
# (never committed). Prints one line per target; exits non-zero when any target found something.
set -uo pipefail
cd "$(dirname "$0")/../.."

BIN=${FUZZ_BIN:-.build-fuzz/release}
SECONDS_EACH=${FUZZ_SECONDS:-180}
TARGETS=${FUZZ_TARGETS:-client-parser nats-config falco-alert}
WORK=.build-fuzz
status=0

for target in $TARGETS; do
    corpus="$WORK/corpus/$target"
    findings="$WORK/findings/$target"
    log="$WORK/logs/$target.log"
    mkdir -p "$corpus" "$findings" "$(dirname "$log")"
    # -timeout: one input taking 10 s is a hang; -malloc_limit_mb: inputs are at most 4 KB (or the seeds'
    # size), so one allocation over 256 MB is a bug, as is a process over 2 GB.
    "$BIN/fuzz-$target" "$corpus" "Tests/Fuzz/corpus/$target" \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
        -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    coverage=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' "$log" | tail -1)
    written=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log")
    found=$([ $rc -eq 0 ] && echo 0 || echo "${written:-exit status $rc}")
    echo "fuzz $target: ${execs:-0} executions in ${SECONDS_EACH} s (${rate:-0}/s), ${coverage:-no coverage line}, findings: $found"
    if [ $rc -ne 0 ]; then
        status=1
        grep -E '^==[0-9]+==ERROR|^SUMMARY|Fatal error|failed:|Test unit written' "$log" | head -8 | sed 's/^/    /'
    fi
done
exit $status
