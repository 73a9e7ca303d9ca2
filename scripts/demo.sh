#!/usr/bin/env bash
# Builds warden and the example agents, then triages the sample invoices for
# two tenants and verifies both audit trails. Safe to run again: the demo keeps
# its state in .warden/demo and starts it afresh each time.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null
echo "==> building warden and the example agents (the first build takes a while)"
cargo build --release -p warden-runtime --bin warden
cargo build --release --target wasm32-wasip2 -p invoice-triage -p vendor-sync
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
for agent in invoice-triage vendor-sync; do
  mkdir -p "examples/$agent/build"
  cp "$target_dir/wasm32-wasip2/release/${agent//-/_}.wasm" "examples/$agent/build/"
done
warden="$target_dir/release/warden"

export WARDEN_DATA_DIR=.warden/demo
rm -rf "$WARDEN_DATA_DIR"
data=examples/invoice-triage/data

echo
echo "==> the grant of invoice-triage, as an operator reviews it"
"$warden" grants show examples/invoice-triage/agent.toml

for tenant in acme globex; do
  echo
  echo "==> tenant $tenant: an operator allows the two agents"
  for agent in vendor-sync invoice-triage; do
    "$warden" agents allow "examples/$agent/agent.toml" --tenant "$tenant" --actor demo-operator
  done
  echo "==> tenant $tenant: loading vendors"
  "$warden" run examples/vendor-sync/agent.toml --tenant "$tenant" --input "$data/vendors.json"
  echo "==> tenant $tenant: triaging $(ls "$data"/*.json | grep -cv vendors.json) invoices"
  for invoice in "$data"/inv-*.json "$data"/malformed.json; do
    printf '%-28s ' "$(basename "$invoice")"
    # An invoice the agent rejects as malformed exits non-zero with its own
    # error; the demo shows it and carries on.
    "$warden" run examples/invoice-triage/agent.toml --tenant "$tenant" --input "$invoice" 2>&1 || true
  done
done

echo
echo "==> the last events of acme's audit trail"
"$warden" audit show --tenant acme | tail -n 8
echo
echo "==> the control-plane stream: who allowed what"
"$warden" audit show --control | grep 'agents allow'
echo
for tenant in acme globex; do
  "$warden" audit verify --tenant "$tenant"
done
"$warden" audit verify --control
