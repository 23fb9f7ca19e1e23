#!/usr/bin/env bash
# Builds the .deb (cargo deb) and .rpm (cargo generate-rpm) into target/debian and
# target/generate-rpm, with man pages and completions generated from the code.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo-deb cargo-generate-rpm; do
    command -v "$tool" >/dev/null || cargo install --locked --quiet "$tool"
done
cargo build --release --quiet --bins
rm -rf target/docs
target/release/sftpd-docs target/docs
cargo deb --no-build --quiet
cargo generate-rpm
ls target/debian/*.deb target/generate-rpm/*.rpm
