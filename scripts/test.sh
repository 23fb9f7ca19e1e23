#!/usr/bin/env bash
# The test suite: installs what the end-to-end tests need (Debian packages), then checks
# formatting, lints and runs every test. Run as root: the end-to-end tests add users and run a
# private sshd and rsyslogd.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in openssh-server openssh-client openssh-sftp-server rsyslog rsync procps passwd util-linux; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages: ${need[*]} (run as root to install them)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian package starts no daemon here, and the tests start their own; sshd only needs its
# privilege-separation directory.
mkdir -p /run/sshd 2>/dev/null || true

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
