#!/bin/sh
# Runs every libFuzzer target (or the ones named) for SECONDS each, one after the
# other, starting from the committed seeds in fuzz/corpus/<target>/.
#   sh fuzz/run.sh SECONDS [TARGET...]      e.g. sh fuzz/run.sh 30, sh fuzz/run.sh 600 png jpeg
# Needs `make fuzz`. New interesting inputs go to build-fuzz/corpus/<target>/ (kept
# between runs, not committed), crashes to build-fuzz/artifacts/<target>-crash-*,
# logs to build-fuzz/logs/. Exits non-zero if any target crashed, leaked, hung
# (-timeout), or allocated more than -malloc_limit_mb in one call.
# Reproduce a crash: build-fuzz/fuzz_TARGET build-fuzz/artifacts/TARGET-crash-...
set -u
cd "$(dirname "$0")/.."
secs=${1:-30}
[ $# -gt 0 ] && shift
targets="$*"
if [ -z "$targets" ]; then
    for b in build-fuzz/fuzz_*; do
        case "$b" in *.d) continue ;; esac
        [ -x "$b" ] && targets="$targets ${b#build-fuzz/fuzz_}"
    done
fi
[ -n "$targets" ] || { echo "fuzz/run.sh: no targets in build-fuzz/ (run make fuzz)"; exit 2; }
tmp=$(mktemp -d /dev/shm/contrast-fuzz-run.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
export CONTRAST_FUZZ_TMP="$tmp"
# leaks are errors; a huge request returns NULL to the library (which must cope),
# while libFuzzer's -malloc_limit_mb still reports any single request over the limit
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
mkdir -p build-fuzz/artifacts build-fuzz/logs
failed=""
for t in $targets; do
    bin=build-fuzz/fuzz_$t
    [ -x "$bin" ] || { echo "fuzz_$t: not built"; failed="$failed $t"; continue; }
    mkdir -p "build-fuzz/corpus/$t"
    dict=""
    [ -f "fuzz/dict/$t.dict" ] && dict="-dict=fuzz/dict/$t.dict"
    log=build-fuzz/logs/$t.log
    # a hang is 10 s without progress; fuzz_cli's augment grids (up to the 32 Mpx cap)
    # legitimately take up to ~30 s in this sanitised, instrumented build
    tmo=10
    [ "$t" = cli ] && tmo=60
    t0=$(date +%s)
    "$bin" -max_total_time="$secs" -timeout=$tmo -rss_limit_mb=2048 -malloc_limit_mb=1024 -close_fd_mask=1 \
        -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" $dict \
        "build-fuzz/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - t0))
    runs=$(grep -a -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    cov=$(grep -a -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    printf 'fuzz_%-12s %4ss  %8s runs  cov %5s  exit %d\n' "$t" "$took" "${runs:-?}" "${cov:-?}" "$rc"
    if [ $rc -ne 0 ]; then
        grep -a -E 'ERROR|SUMMARY|invariant|Test unit written|^    #[0-9]' "$log" | head -n 30
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (logs in build-fuzz/logs/)"
    exit 1
fi
echo "fuzz: all targets ran ${secs}s without a finding"
