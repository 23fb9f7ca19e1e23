#!/usr/bin/env bash
# The test suite: installs what the end-to-end tests need (Debian packages), then checks
# formatting, lints and runs every test. Run as root: the end-to-end tests add users and run a
# private sshd and rsyslogd.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in openssh-server openssh-client openssh-sftp-server rsyslog rsync procps passwd util-linux bsdutils systemd mtail prometheus chromium postgresql binutils rpm man-db python3-paramiko gcc xauth lftp curl sshfs fuse3 putty-tools rclone podman debootstrap runc; do
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
# The login shell alone, without the accounting wing and its database crates: an import of
# accounting code from the shell fails here.
cargo clippy --no-default-features --lib --bin sftpd-wrapper -- -D warnings
cargo build --no-default-features --bin sftpd-wrapper
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# The packages: build the .deb and .rpm, install the .deb, run a real session through it, purge.
if [ "$status" -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
    set +e
    bash packaging/test-packages.sh 2>&1 | tee -a "$log"
    status=${PIPESTATUS[0]}
    [ "$status" -eq 0 ] || echo "packages: 0 passed, 1 failed" >> "$log"
    set -e
fi
# The container: a debootstrap base imported into Podman, the image built on it, real sessions
# through it, a restart (packaging/test-container.sh prints its own `container:` line).
if [ "$status" -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
    set +e
    bash packaging/test-container.sh 2>&1 | tee -a "$log"
    status=${PIPESTATUS[0]}
    [ "$status" -eq 0 ] || grep -q '^container:' "$log" || echo "container: 0 passed, 1 failed" >> "$log"
    set -e
fi
# One closing line for the whole suite (the benchmark's smoke run prints after the last test).
awk '/^(test result|packages|container):/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed[;,]?$/) p += $i; if ($(i+1) ~ /^failed[;,]?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
