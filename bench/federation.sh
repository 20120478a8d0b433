#!/usr/bin/env bash
# How fast messages cross between homeservers: Plugboard->Synapse, Synapse->Plugboard,
# Plugboard->Plugboard and Synapse->Synapse (the baseline), in one run on loopback. Builds the
# bench in release (the Plugboards run inside it), installs Synapse into target/synapse-venv on
# first use, and prints one JSON line per pair on stdout and a table on stderr.
#   bench/federation.sh [--events N] [--rate EVENTS_PER_S] [--pairs plugboard->synapse,...]
#   (RUST_LOG for the Plugboards' logs)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p plugboard-bench --bin plugboard-federation-bench
exec target/release/plugboard-federation-bench "$@"
