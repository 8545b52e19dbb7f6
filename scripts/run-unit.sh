#!/usr/bin/env bash
# Runs each unit-test binary given and prints one closing line with the totals.
set -u
passed=0; failed=0; rc=0
for t in "$@"; do
    out=$("$t" 2>&1); r=$?
    echo "$out"
    line=$(echo "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -1)
    p=$(echo "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ $r -ne 0 ]; then rc=1; [ -z "$line" ] && failed=$((failed + 1)); fi
done
echo "unit total: $passed passed, $failed failed"
exit $rc
