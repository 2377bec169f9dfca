#!/usr/bin/env bash
# `pane pull` against registries that never stop sending or never answer: for each, the
# exit status, the first line of pane's error, the wall time and pane's peak RSS, and
# what the store kept. Needs a release build (cargo build --release --bin pane) and
# /usr/bin/time (Debian's `time` package).
set -euo pipefail
cd "$(dirname "$0")/.."
pane=${PANE:-target/release/pane}
timeout_seconds=${TIMEOUT:-10}
for mode in endless-manifest endless-layer trickle-layer silent; do
    root=$(mktemp -d)
    coproc server { exec python3 -u bench/hostile-registry.py "$mode"; }
    read -r port <&"${server[0]}"
    set +e
    /usr/bin/time -f '%e s, peak RSS %M KiB' -o "$root/time" \
        "$pane" --root "$root" --registry-timeout "$timeout_seconds" \
        pull "127.0.0.1:$port/hostile/app:v1" --host-build 10.0.20348 >/dev/null 2>"$root/err"
    status=$?
    set -e
    kill "$server_PID" 2>/dev/null || true
    wait "$server_PID" 2>/dev/null || true
    kept=$(find "$root/content/blobs" "$root/content/ingest" -type f ! -name '*.lock' | wc -l)
    printf '%-17s exit %s, %s; %s blob or partial file(s) kept\n  %s\n' \
        "$mode" "$status" "$(tail -n 1 "$root/time")" "$kept" "$(grep -m 1 '^pane:' "$root/err" | head -c 300)"
    rm -rf "$root"
done
