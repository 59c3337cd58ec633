#!/usr/bin/env bash
# Runs Pressrun's whole test suite on a machine with only the Rust toolchain.
# Installs what the tests need (qpdf, poppler-utils, promtool from prometheus, dmtxread from
# dmtx-utils, socat for the serial-line pty pair, ippeveprinter from cups-ipp-utils and
# dbus-daemon for the IPP printer peer, snmpget from snmp for the SNMP printer peer) with
# apt-get, and snmpsim (the SNMP printer peer) with pip, or fails saying what is missing.
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
command -v snmpget >/dev/null 2>&1 || missing+=(snmp)
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]} (needed by the PDF, metrics, Data Matrix, serial-line, IPP and SNMP checks)" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test.sh: missing ${missing[*]}: install them with apt-get (root needed)" >&2
    exit 1
  fi
fi

# snmpsim 1.2.2 needs pysmi (undeclared) and cryptography (SNMPv3 privacy): docs/peers/snmp.md.
if ! command -v snmpsim-command-responder >/dev/null 2>&1; then
  echo "test.sh: installing snmpsim==1.2.2 pysmi cryptography with pip (needed by the SNMP checks)" >&2
  if ! python3 -m pip install -q snmpsim==1.2.2 pysmi cryptography; then
    echo "test.sh: could not install snmpsim: run 'python3 -m pip install snmpsim==1.2.2 pysmi cryptography'" >&2
    exit 1
  fi
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  command -v snmpsim-command-responder >/dev/null 2>&1 || {
    echo "test.sh: snmpsim-command-responder is not on PATH after pip install: add pip's script folder to PATH" >&2
    exit 1
  }
fi

# The end-to-end tests in tests/ run the real binaries: build them first.
cargo build --workspace --bins
cargo test --workspace --no-fail-fast "$@"
