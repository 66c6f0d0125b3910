#!/usr/bin/env bash
# Runs `swift test --skip-build --filter FILTER` and fails when the filter matched no test: a
# renamed test would otherwise turn its step of `make test` into a silent pass ("Test run with 0
# tests ... passed", exit 0).
set -euo pipefail
filter=${1:?usage: swift-test-filtered.sh FILTER}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
swift test --skip-build --filter "$filter" 2>&1 | tee "$out"
if ! grep -Eq 'Test run with [1-9][0-9]* tests? .*passed' "$out"; then
    echo "swift-test-filtered.sh: the filter '$filter' ran no test" >&2
    exit 1
fi
