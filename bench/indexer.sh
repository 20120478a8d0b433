#!/usr/bin/env bash
# The indexer through the whole host (release build, in-process server, SQLite in a temporary
# data dir): 100,000 messages of varied words sent, the indexer installed with a history
# replay from the beginning, messages/s indexed, then query latency over 300 searches through
# its web endpoint. Prints one JSON line on stdout, progress on stderr.
#
#   bench/indexer.sh [--messages N] [--queries Q] [--rooms R] [--concurrency C]
#
# Environment: BENCH_NO_BUILD=1 uses target/release and the built component as they are.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
wasm_dir="$root/target/wasm-plugins/default"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release -q -p plugboard-bench --bin plugboard-indexer-bench
    cargo build -q --profile plugin --target wasm32-wasip2 -p plugboard-plugin-indexer \
        --target-dir "$wasm_dir"
fi
exec "$root/target/release/plugboard-indexer-bench" \
    --wasm "$wasm_dir/wasm32-wasip2/plugin/plugboard_plugin_indexer.wasm" \
    --manifest "$root/plugins/indexer/plugin.toml" "$@"
