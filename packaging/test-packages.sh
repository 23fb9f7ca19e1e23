#!/usr/bin/env bash
# Builds the packages, checks the .rpm's contents, installs the .deb with dpkg, runs a real SFTP
# session through the installed binaries (packaging/demo.sh --installed), then purges it and checks
# that nothing is left. Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-packages.sh must run as root" >&2; exit 1; }
command -v rpm >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm man-db >/dev/null; }

bash packaging/build-packages.sh
deb=$(ls -t target/debian/*.deb | head -n 1)
rpmfile=$(ls -t target/generate-rpm/*.rpm | head -n 1)
fail() { echo "test-packages: $*" >&2; exit 1; }

echo "== rpm contents"
files=$(rpm -qlp "$rpmfile" 2>/dev/null)
for f in /usr/sbin/sftpd-wrapper /usr/bin/sftpd-report /etc/sftpd-wrapper.toml /usr/share/man/man8/sftpd-wrapper.8 \
         /usr/share/man/man5/sftpd-wrapper.toml.5 /etc/logrotate.d/sftpd-wrapper \
         /usr/lib/systemd/system/sftpd-report-follow.service /usr/lib/systemd/system/sftpd-report-prune.service \
         /usr/lib/systemd/system/sftpd-report-prune.timer; do
    grep -qx "$f" <<<"$files" || fail "$rpmfile lacks $f"
done
rpm -qp --scripts "$rpmfile" 2>/dev/null | grep -q /etc/shells || fail "the rpm does not register the shell"

echo "== dpkg -i $deb"
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confnew "$deb" >/dev/null
grep -qx /usr/sbin/sftpd-wrapper /etc/shells || fail "/etc/shells lacks /usr/sbin/sftpd-wrapper after install"
/usr/sbin/sftpd-wrapper --version
/usr/bin/sftpd-report --version
/usr/sbin/sftpd-wrapper --check-config >/dev/null || fail "the installed config does not pass --check-config"
for page in sftpd-wrapper.8 sftpd-report.1 sftpd-wrapper.toml.5; do
    [ -f "/usr/share/man/man${page##*.}/$page.gz" ] || fail "man page $page missing"
done
man -l /usr/share/man/man5/sftpd-wrapper.toml.5.gz 2>/dev/null | grep -q on_upload || fail "sftpd-wrapper.toml(5) does not render"
[ -f /usr/share/bash-completion/completions/sftpd-report ] || fail "bash completion missing"
for name in sftpd-report-follow.service sftpd-report-prune.service sftpd-report-prune.timer; do
    unit=/lib/systemd/system/$name
    [ -f "$unit" ] || fail "$unit missing"
    systemd-analyze verify "$unit" || fail "$unit does not verify"
    [ -z "$(find /etc/systemd/system -name "$name" 2>/dev/null)" ] \
        || fail "$unit is enabled by the package; it must be disabled by default"
done

echo "== a real session through the installed binaries"
bash packaging/demo.sh --installed

echo "== dpkg --purge"
dpkg --purge sftpd-wrapper >/dev/null
! grep -qx /usr/sbin/sftpd-wrapper /etc/shells || fail "/etc/shells still lists the wrapper after purge"
for f in /usr/sbin/sftpd-wrapper /usr/bin/sftpd-report /etc/rsyslog.d/30-sftpd-wrapper.conf /etc/logrotate.d/sftpd-wrapper \
         /lib/systemd/system/sftpd-report-follow.service /lib/systemd/system/sftpd-report-prune.timer; do
    [ ! -e "$f" ] || fail "$f is still there after purge"
done
echo "packages: 1 passed, 0 failed"
