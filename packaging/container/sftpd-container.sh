#!/bin/bash
# The container's start script, run by tini as PID 1's only child. On every start it:
#   1. reads the partners file and creates (or checks) their accounts;
#   2. makes the host keys on the first start, on the /etc/ssh/keys volume, and keeps them;
#   3. writes sshd_config (the container's settings, the shipped Match block, a ChrootDirectory
#      per partner) and the wrapper's config (yours if mounted, with [report] from the
#      environment);
#   4. builds each partner's jail /srv/sftp/NAME afresh from the image (the home directory in
#      it is kept), starts rsyslog with a /dev/log in every jail, then runs
#      `sftpd-wrapper --setup-chroot`, `--check-config` and `--check-sshd` for every partner and
#      refuses to start on any error;
#   5. starts `sftpd-report ingest --follow` (restarted after 10 s when it fails) and sshd.
# SIGTERM stops sshd and the sessions first, then the ingest (after it has read their last
# lines) and rsyslog. If sshd or rsyslog dies, the container stops with status 1.
set -euo pipefail
umask 022

PARTNERS=${SFTPD_PARTNERS:-/etc/sftpd-container/partners}
CONFIG_IN=/etc/sftpd-container/sftpd-wrapper.toml
SHARE=/usr/share/sftpd-container
JAILS=/srv/sftp
KEYS=/etc/ssh/keys
AUTHORIZED=/etc/ssh/authorized_keys
LOG=/var/log/sftpd/sftpd.log
RUN=/run/sftpd-container
GROUP=sftp-partners
WRAPPER=/usr/sbin/sftpd-wrapper
DAEMON_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "sftpd-container: $*" >&2; }
die() {
    say "error: $*"
    say "refusing to start"
    exit 1
}

mkdir -p "$RUN" /run/sshd
chmod 0755 /run/sshd

# 1. Partners. One line per public key: NAME UID KEY, KEY being one authorized_keys line
# (options allowed). Lines of one partner must agree on the uid.
[ -f "$PARTNERS" ] || die "no partners file at $PARTNERS (mount one: see the README, \"The container\")"
declare -A uid_of=() keys_of=() name_of_uid=()
order=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line=${line%$'\r'}
    line=${line//$'\t'/ }
    [[ $line =~ ^\ *(#.*)?$ ]] && continue
    [[ $line == *[[:cntrl:]]* ]] && die "$PARTNERS line $lineno: control characters"
    read -r name uid key <<<"$line"
    [[ $name =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] \
        || die "$PARTNERS line $lineno: the name must match [a-z_][a-z0-9_-]{0,31}"
    [[ $uid =~ ^[0-9]{1,10}$ ]] && [ "$uid" -ge 1000 ] && [ "$uid" -le 2147483647 ] && [ "$uid" -ne 65534 ] \
        || die "$PARTNERS line $lineno: the uid must be a number from 1000 to 2147483647 (not 65534)"
    [ -n "${key:-}" ] || die "$PARTNERS line $lineno: no public key after the uid"
    if [ -n "${uid_of[$name]:-}" ]; then
        [ "${uid_of[$name]}" = "$uid" ] || die "$PARTNERS line $lineno: $name has uid ${uid_of[$name]} on an earlier line"
    else
        [ -z "${name_of_uid[$uid]:-}" ] || die "$PARTNERS line $lineno: uid $uid is ${name_of_uid[$uid]}'s"
        uid_of[$name]=$uid
        name_of_uid[$uid]=$name
        order+=("$name")
    fi
    keys_of[$name]+="$key"$'\n'
done <"$PARTNERS"
[ ${#order[@]} -gt 0 ] || die "$PARTNERS lists no partner"

getent group "$GROUP" >/dev/null || groupadd -r "$GROUP"
for name in "${order[@]}"; do
    uid=${uid_of[$name]}
    if entry=$(getent passwd "$name"); then
        # Created by an earlier start of this container: the same account, or a clash.
        IFS=: read -r _ _ have_uid _ _ have_home have_shell <<<"$entry"
        [ "$have_uid" = "$uid" ] && [ "$have_shell" = "$WRAPPER" ] && [ "$have_home" = "/home/$name" ] \
            || die "$name already exists in the image with uid $have_uid and shell $have_shell: choose another name"
        usermod -a -G "$GROUP" "$name"
    else
        ! getent passwd "$uid" >/dev/null || die "uid $uid ($name) belongs to $(getent passwd "$uid" | cut -d: -f1) in the image"
        if getent group "$name" >/dev/null; then
            [ "$(getent group "$name" | cut -d: -f3)" = "$uid" ] || die "group $name exists in the image with another gid"
        else
            ! getent group "$uid" >/dev/null || die "gid $uid ($name) belongs to group $(getent group "$uid" | cut -d: -f1) in the image"
            groupadd -g "$uid" "$name"
        fi
        # `*`: no password can match, and sshd (without PAM) does not take it as locked.
        useradd -M -d "/home/$name" -s "$WRAPPER" -u "$uid" -g "$name" -G "$GROUP" -p '*' "$name"
    fi
done
# A partner taken out of the file loses access: out of the group sshd allows, no keys.
for member in $(getent group "$GROUP" | cut -d: -f4 | tr , ' '); do
    [ -n "${uid_of[$member]:-}" ] || { gpasswd -d "$member" "$GROUP" >/dev/null; say "$member is no longer a partner"; }
done
rm -rf "$AUTHORIZED"
install -d -m 0755 "$AUTHORIZED"
for name in "${order[@]}"; do
    printf '%s' "${keys_of[$name]}" >"$AUTHORIZED/$name"
    chmod 0644 "$AUTHORIZED/$name"
done

# 2. Host keys: made once, kept on the volume.
install -d -m 0755 "$KEYS"
for type in ed25519 ecdsa rsa; do
    key=$KEYS/ssh_host_${type}_key
    if [ ! -s "$key" ]; then
        ssh-keygen -q -t "$type" -N '' -C "" -f "$key"
        say "made host key $key"
    fi
    [ -s "$key.pub" ] || ssh-keygen -y -f "$key" >"$key.pub"
    chown root:root "$key" "$key.pub"
    chmod 0600 "$key"
    chmod 0644 "$key.pub"
done

# 3. sshd_config and the wrapper's config.
{
    cat "$SHARE/sshd_config"
    echo
    echo "# The shipped Match block (/usr/share/doc/sftpd-wrapper/sshd_config.snippet):"
    cat "$SHARE/sshd_config.snippet"
    echo
    echo "# Every partner in a jail without /proc: sftp-server cannot reach /proc/<pid>/mem even"
    echo "# where the engine refuses the user namespace that would hide it."
    echo "Match Group $GROUP"
    echo "    ChrootDirectory $JAILS/%u"
} >/etc/ssh/sshd_config
chmod 0644 /etc/ssh/sshd_config

config_src=$SHARE/sftpd-wrapper.toml
[ -f "$CONFIG_IN" ] && config_src=$CONFIG_IN
# What the jails get: the wrapper's settings only.
install -m 0644 -o root -g root "$config_src" "$RUN/jail.toml"
install -m 0600 -o root -g root "$config_src" /etc/sftpd-wrapper.toml
if [ -n "${SFTPD_REPORT_DATABASE:-}" ]; then
    ! grep -q '^[[:space:]]*\[report\]' "$config_src" \
        || die "SFTPD_REPORT_DATABASE is set and $config_src has a [report] section: use one or the other"
    for value in "$SFTPD_REPORT_DATABASE" "${SFTPD_REPORT_PASSWORD_FILE:-}"; do
        case $value in *"'"* | *[[:cntrl:]]*) die "SFTPD_REPORT_DATABASE and SFTPD_REPORT_PASSWORD_FILE cannot hold ' or control characters" ;; esac
    done
    {
        printf "\n[report]\ndatabase = '%s'\n" "$SFTPD_REPORT_DATABASE"
        [ -z "${SFTPD_REPORT_PASSWORD_FILE:-}" ] || printf "password_file = '%s'\n" "$SFTPD_REPORT_PASSWORD_FILE"
    } >>/etc/sftpd-wrapper.toml
fi
"$WRAPPER" --check-config >"$RUN/check-config.txt" 2>&1 \
    || { cat "$RUN/check-config.txt" >&2; die "sftpd-wrapper --check-config failed"; }

# 4. The jails. sshd refuses a jail any component of which is not root's or is writable by
# others.
chown root:root "$JAILS"
chmod 0755 "$JAILS"
devnull_is_null() { [ -c "$1" ] && [ "$(stat -c '%t:%T:%u' "$1")" = "1:3:0" ]; }
for name in "${order[@]}"; do
    jail=$JAILS/$name
    install -d -o root -g root -m 0755 "$jail" "$jail/dev" "$jail/home"
    # The programs, libraries, passwd and config are the image's of this start: a previous
    # start's copies go (the home directory and /dev/null stay).
    find "$jail" -mindepth 1 -maxdepth 1 ! -name home ! -name dev -exec rm -rf {} +
    find "$jail/dev" -mindepth 1 -maxdepth 1 ! -name null -exec rm -rf {} +
    if ! devnull_is_null "$jail/dev/null"; then
        rm -f "$jail/dev/null"
        # A hard link to the node the image put on the volume needs no capability; mknod needs
        # CAP_MKNOD (Docker grants it, Podman does not).
        { devnull_is_null "$JAILS/.dev/null" && ln "$JAILS/.dev/null" "$jail/dev/null"; } 2>/dev/null \
            || mknod -m 0666 "$jail/dev/null" c 1 3 2>/dev/null \
            || die "cannot make $jail/dev/null: $JAILS is not a volume the image populated and mknod is refused; use a named volume, or create the node once on the host (mknod -m 666 DIR/.dev/null c 1 3 in the directory mounted at $JAILS), or run with --cap-add MKNOD"
    fi
done
for name in "${order[@]}"; do
    printf 'input(type="imuxsock" Socket="%s/%s/dev/log" CreatePath="off" RateLimit.Interval="0")\n' "$JAILS" "$name"
done >"$RUN/rsyslog-jails.conf"

install -d -m 0755 "$(dirname "$LOG")"
[ -e "$LOG" ] || install -m 0640 /dev/null "$LOG"
install -d -m 0700 /var/spool/rsyslog
rm -f /dev/log
env -i PATH="$DAEMON_PATH" /usr/sbin/rsyslogd -n -iNONE -f /etc/rsyslog.conf &
rsyslog_pid=$!
for _ in $(seq 100); do
    missing=0
    for name in "${order[@]}"; do [ -S "$JAILS/$name/dev/log" ] || missing=1; done
    [ "$missing" -eq 0 ] && break
    kill -0 "$rsyslog_pid" 2>/dev/null || die "rsyslogd exited"
    sleep 0.1
done
[ "$missing" -eq 0 ] || die "rsyslogd made no /dev/log in the jails"

stop_early() { kill -TERM "$rsyslog_pid" 2>/dev/null || true; }
trap stop_early EXIT
for name in "${order[@]}"; do
    jail=$JAILS/$name
    "$WRAPPER" --setup-chroot "$name" --jail "$jail" --config "$RUN/jail.toml" >"$RUN/chroot-$name.txt" 2>&1 \
        || { cat "$RUN/chroot-$name.txt" >&2; die "sftpd-wrapper --setup-chroot $name: the jail is incomplete"; }
    chown "$name:$name" "$jail/home/$name"
    chmod 0700 "$jail/home/$name"
    chroot "$jail" "$WRAPPER" --version >/dev/null 2>&1 \
        || die "the wrapper does not run in $jail: is $JAILS mounted noexec?"
done
# sftp-server opens /dev/null first thing (and exits without it). Podman mounts volumes nodev
# by default, which leaves the node there but unusable.
{ : >"$JAILS/${order[0]}/dev/null"; } 2>/dev/null \
    || die "$JAILS is mounted nodev: the jails' /dev/null cannot be opened, and sftp-server needs it; mount the volume with the dev option (podman run -v VOLUME:$JAILS:dev)"

/usr/sbin/sshd -t || die "sshd -t refuses /etc/ssh/sshd_config"
for name in "${order[@]}"; do
    if ! "$WRAPPER" --check-sshd "$name" >"$RUN/check-sshd-$name.txt" 2>&1; then
        cat "$RUN/check-sshd-$name.txt" >&2
        die "sftpd-wrapper --check-sshd $name found an error"
    fi
    # The findings that remain are warnings: say them once.
    if [ "$name" = "${order[0]}" ]; then
        grep -v '^#' "$RUN/check-sshd-$name.txt" | sed 's/^/sftpd-container: check-sshd: /' >&2 || true
    fi
done

# 5. The ingest and sshd.
ingest_loop() {
    set +e
    local child
    trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 0' TERM
    while :; do
        sftpd-report ingest --follow "$LOG" &
        child=$!
        wait "$child"
        say "sftpd-report ingest exited with status $?; again in 10 s"
        sleep 10 &
        child=$!
        wait "$child"
    done
}
ingest_loop &
ingest_pid=$!

env -i PATH="$DAEMON_PATH" /usr/sbin/sshd -D -e &
sshd_pid=$!
trap - EXIT

# Processes of the sessions: the per-connection sshd, the wrapper, sftp-server and hooks run as
# the partners (uid >= 1000).
session_processes() {
    local p comm uid
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$sshd_pid" ] && continue
        read -r comm <"$p/comm" 2>/dev/null || continue
        uid=$(stat -c %u "$p" 2>/dev/null) || continue
        if [ "$comm" = sshd ] || [ "$uid" -ge 1000 ]; then echo "${p#/proc/}"; fi
    done
}

stopping=0
stop() {
    [ "$stopping" -eq 1 ] && return
    stopping=1
    say "stopping: sshd and the sessions, then the ingest and rsyslog"
    kill -TERM "$sshd_pid" 2>/dev/null || true
    for pid in $(session_processes); do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        [ -z "$(session_processes)" ] && break
        sleep 0.1
    done
    # The follower looks every 250 ms: let it read the sessions' last lines.
    sleep 1
    kill -TERM "$ingest_pid" 2>/dev/null || true
    wait "$ingest_pid" 2>/dev/null || true
    kill -TERM "$rsyslog_pid" 2>/dev/null || true
    wait "$rsyslog_pid" 2>/dev/null || true
    say "stopped"
    exit "${1:-0}"
}
trap 'stop 0' TERM INT HUP

say "ready: ${#order[@]} partner(s) (${order[*]}); host keys:"
for type in ed25519 ecdsa rsa; do ssh-keygen -l -f "$KEYS/ssh_host_${type}_key.pub" | sed 's/^/sftpd-container:   /' >&2; done

while :; do
    wait -n "$sshd_pid" "$rsyslog_pid" "$ingest_pid" || true
    [ "$stopping" -eq 1 ] && continue
    kill -0 "$sshd_pid" 2>/dev/null || { say "error: sshd exited"; stop 1; }
    kill -0 "$rsyslog_pid" 2>/dev/null || { say "error: rsyslogd exited"; stop 1; }
    kill -0 "$ingest_pid" 2>/dev/null || { say "error: the ingest loop exited"; stop 1; }
done
