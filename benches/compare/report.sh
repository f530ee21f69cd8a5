#!/usr/bin/env bash
# Runs the comparison benchmarks and writes spec/performance.md. Takes several minutes.
set -euo pipefail
cd "$(dirname "$0")"
cargo bench --bench compare
cargo run --release --quiet > ../../spec/performance.md
echo "wrote spec/performance.md"
