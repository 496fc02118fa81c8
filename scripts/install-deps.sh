#!/usr/bin/env bash
# Installs what building and testing Tugboat needs on Debian 12, skipping what is present:
# the Debian packages (etcd for the etcd backend and its tests, protoc for gRPC code, a C
# toolchain, tzdata for CronJob time zones, containerd + runc + the CNI plugins + iptables for
# the kubelet, busybox-static for the tests' container image) and, if cargo is missing, a Rust toolchain through rustup.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(etcd-server protobuf-compiler build-essential ca-certificates curl tzdata
  containerd runc containernetworking-plugins iptables busybox-static)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# The end-to-end tests drive real kubectl 1.28 and 1.33, from the Google Cloud SDK's
# `kubectl` package (preinstalled on our CI image). Try to install it where it is missing.
if [ ! -x /usr/lib/google-cloud-sdk/bin/kubectl.1.33 ]; then
  $SUDO apt-get install -y -qq kubectl || echo "warning: kubectl 1.28/1.33 not installed; the kubectl tests will fail" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "installing Rust (rustup, stable)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# The workspace needs Rust 1.89 or newer (its rust-version); update an older toolchain.
rust_minor=$(rustc --version 2>/dev/null | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p')
if [ -n "$rust_minor" ] && [ "$rust_minor" -lt 89 ]; then
  if command -v rustup >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/rustup" ]; then
    echo "updating Rust (found 1.$rust_minor, need 1.89+)"
    PATH="$HOME/.cargo/bin:$PATH" rustup update stable
  else
    echo "installing Rust through rustup (found 1.$rust_minor, need 1.89+)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
  export PATH="$HOME/.cargo/bin:$PATH"
fi
