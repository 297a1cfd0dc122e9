#!/bin/sh
# Runs every test binary, prints each one's result and the total as the last line.
# Usage: tests/run.sh BUILD_DIR CONTRAST_BIN
build=${1:-build}
bin=${2:-contrast}
case "$bin" in */*) ;; *) bin="./$bin" ;; esac
export CONTRAST_BIN="$bin"
pass=0; fail=0; bad=""
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    out=$("$t" 2>&1); rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out" | tail -n 20
        echo "$name: crashed or printed no result (exit $rc)"
        fail=$((fail + 1)); bad="$bad $name"; continue
    fi
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    if [ "$f" -ne 0 ] || [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed' | tail -n 40
        bad="$bad $name"
        [ "$f" -eq 0 ] && f=1
    fi
    printf '%-28s %s\n' "$name" "$line"
    pass=$((pass + p)); fail=$((fail + f))
done
[ -n "$bad" ] && echo "failing:$bad"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
