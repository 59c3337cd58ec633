#!/usr/bin/env bash
# Runs Pressrun's whole test suite on a machine with only the Rust toolchain.
# Installs what the tests need (qpdf, poppler-utils, promtool from prometheus, dmtxread from
# dmtx-utils, socat for the serial-line pty pair, ippeveprinter from cups-ipp-utils and
# dbus-daemon for the IPP printer peer) with apt-get,
# or fails saying what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v qpdf >/dev/null 2>&1 || missing+=(qpdf)
{ command -v pdftotext && command -v pdfinfo && command -v pdffonts; } >/dev/null 2>&1 || missing+=(poppler-utils)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v dmtxread >/dev/null 2>&1 || missing+=(dmtx-utils)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v ippeveprinter >/dev/null 2>&1 || missing+=(cups-ipp-utils)
command -v dbus-daemon >/dev/null 2>&1 || missing+=(dbus-daemon)
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]} (needed by the PDF, metrics, Data Matrix, serial-line and IPP checks)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test.sh: missing ${missing[*]}: install them with apt-get (root needed)" >&2
    exit 1
  fi
fi

# The end-to-end tests in tests/ run the real binaries: build them first.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast "$@"
