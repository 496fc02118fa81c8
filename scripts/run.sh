#!/usr/bin/env bash
# The one command that takes a fresh Debian 12 machine to a running Tugboat: installs what is
# missing, builds the release binary, and starts `tug server` (embedded store, no
# configuration). Extra arguments go to `tug server`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

cargo build --release --locked -p tug
echo "built target/release/tug ($(target/release/tug version | head -n1))"

args=()
if [ "$(id -u)" -ne 0 ]; then
  # /var/lib/tug and running containers need root: keep state in the user's home and run
  # the control plane only.
  echo "not root: starting the control plane without the node agent (run as root for a node)" >&2
  args+=(--data-dir "${XDG_DATA_HOME:-$HOME/.local/share}/tug" --disable-agent)
fi
data_dir=/var/lib/tug
if [ "$(id -u)" -ne 0 ]; then data_dir="${XDG_DATA_HOME:-$HOME/.local/share}/tug"; fi
echo "starting tug server; next, in another terminal: kubectl --kubeconfig $data_dir/admin.kubeconfig get nodes"
exec target/release/tug server "${args[@]}" "$@"
