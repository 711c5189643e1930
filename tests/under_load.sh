#!/usr/bin/env bash
# The README's whole test command while busy loops keep every core busy (issue 12: the suite must
# not depend on an idle machine). HOGS busy processes (default: two per core) run until it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
hogs=${HOGS:-$(( 2 * $(nproc) ))}
pids=()
for _ in $(seq "$hogs"); do python3 -c 'while True: pass' & pids+=($!); done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
echo "under_load: $hogs busy loops on $(nproc) cores; $(uptime)"
start=$(date +%s)
bash .ci/run
echo "under_load: green in $(( $(date +%s) - start )) s; $(uptime)"
