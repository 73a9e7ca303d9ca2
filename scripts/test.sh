#!/usr/bin/env bash
# Runs the whole test suite: unit, integration (the real warden binary with
# real guest components built from source) and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null
cargo test --workspace "$@"
