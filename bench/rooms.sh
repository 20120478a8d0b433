#!/usr/bin/env bash
# What rooms cost in memory (issue 13): `plugboard-rooms-bench` starts a release `plugboard
# serve` as a child (fresh data dir, rate limits off, no bundled plugins), creates 5,000 rooms
# with a name, a topic, the public_chat preset's state and six members each, and reads the
# server's RSS idle, after a restart, after touching every room, during one initial /sync and
# during four concurrent ones. Prints one JSON line on stdout, progress on stderr.
#
#   bench/rooms.sh [--server PATH] [--rooms N] [--members M] [--env KEY=VALUE]... [--label L]
#
# --server measures another build (e.g. an older commit's binary); the default is this tree's
# target/release/plugboard. Environment: BENCH_NO_BUILD=1 uses target/release as it is.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release -q -p plugboard -p plugboard-bench --bin plugboard --bin plugboard-rooms-bench
fi
exec "$root/target/release/plugboard-rooms-bench" --server "$root/target/release/plugboard" "$@"
