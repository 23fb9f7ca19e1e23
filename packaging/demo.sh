#!/usr/bin/env bash
# A one-command demo on a fresh Debian machine, as root: builds the project, starts a throwaway
# rsyslogd and sshd on 127.0.0.1, creates a demo partner whose login shell is sftpd-wrapper, runs a
# real SFTP session and a refused `ssh host id`, shows the audit log, ingests it into an SQLite
# database with sftpd-report and prints the usage and transfers reports. Everything it creates is
# removed at the end; the host's /etc/sftpd-wrapper.toml, /dev/log and sshd are not touched (the
# demo sshd runs in a mount namespace of its own, as the test harness does).
set -euo pipefail
cd "$(dirname "$0")/.."

# --installed: use the packaged /usr/sbin/sftpd-wrapper and /usr/bin/sftpd-report instead of
# building (packaging/test-packages.sh runs the demo that way).
installed=no
[ "${1:-}" = "--installed" ] && installed=yes

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh must run as root: it adds a user and starts sshd" >&2
    exit 1
fi
need=()
for pkg in openssh-server openssh-client openssh-sftp-server rsyslog util-linux; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "$installed" = yes ]; then
    wrapper_bin=/usr/sbin/sftpd-wrapper
    report_bin=/usr/bin/sftpd-report
else
    echo "== building"
    cargo build --release --quiet
    wrapper_bin=target/release/sftpd-wrapper
    report_bin=target/release/sftpd-report
fi

work=$(mktemp -d /tmp/sftpd-demo.XXXXXX)
chmod 755 "$work"
user="sftpdemo$$"
port=$(( 20000 + RANDOM % 20000 ))
created_placeholder=no
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    pkill -KILL -u "$user" 2>/dev/null || true
    userdel "$user" 2>/dev/null || true
    [ "$created_placeholder" = yes ] && rm -f /etc/sftpd-wrapper.toml
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work"/{bin,dev,keys,home,rsyslog,local}
install -m 755 "$wrapper_bin" "$work/bin/sftpd-wrapper"
# The partner's login shell: the installed binary itself, or the fresh build's copy.
shell="$work/bin/sftpd-wrapper"
[ "$installed" = yes ] && shell=/usr/sbin/sftpd-wrapper

# A post-session hook, run without a shell by the wrapper, that keeps a billing note.
cat > "$work/bin/post-session" <<'HOOK'
#!/bin/sh
echo "post_session: $SFTPD_USER from $SFTPD_CLIENT_IP session $SFTPD_SESSION_ID took $SFTPD_DURATION_MS ms, exit $SFTPD_EXIT_STATUS" >> "$DEMO_NOTES"
HOOK
chmod 755 "$work/bin/post-session"
touch "$work/post-session.log" && chmod 666 "$work/post-session.log"
cat > "$work/sftpd-wrapper.toml" <<CONF
[hooks]
post_session = ["/usr/bin/env", "DEMO_NOTES=$work/post-session.log", "$work/bin/post-session"]
post_session_mode = "wait"
CONF
chmod 644 "$work/sftpd-wrapper.toml"
"$wrapper_bin" --check-config --config "$work/sftpd-wrapper.toml" >/dev/null

echo "== starting a throwaway rsyslogd (local5 -> $work/sftpd.log)"
cat > "$work/rsyslog.conf" <<CONF
global(workDirectory="$work/rsyslog")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$work/dev/log" RateLimit.Interval="0")
local5.* action(type="omfile" file="$work/sftpd.log" template="RSYSLOG_TraditionalFileFormat")
CONF
/usr/sbin/rsyslogd -n -f "$work/rsyslog.conf" -i "$work/rsyslog/pid" &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/dev/log" ] && break; sleep 0.05; done

echo "== starting a throwaway sshd on 127.0.0.1:$port"
ssh-keygen -q -t ed25519 -N '' -f "$work/keys/host"
ssh-keygen -q -t ed25519 -N '' -f "$work/keys/client"
mkdir -p "$work/keys/authorized" /run/sshd
cat > "$work/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $work/keys/host
PidFile $work/sshd.pid
AuthorizedKeysFile $work/keys/authorized/%u
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
for dev in null zero full random urandom tty; do touch "$work/dev/$dev"; done
if [ ! -e /etc/sftpd-wrapper.toml ]; then
    touch /etc/sftpd-wrapper.toml
    created_placeholder=yes
fi
# In its own mount namespace sshd (and so the wrapper and sftp-server it runs) sees the demo's
# config at /etc/sftpd-wrapper.toml and the demo's rsyslogd socket at /dev/log.
unshare --mount --propagation private -- /bin/sh -c '
    set -e
    for dev in null zero full random urandom tty; do mount --bind "/dev/$dev" "$1/dev/$dev"; done
    mount --rbind "$1/dev" /dev
    mount --bind "$1/sftpd-wrapper.toml" /etc/sftpd-wrapper.toml
    exec /usr/sbin/sshd -D -f "$1/sshd_config"
' demo "$work" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

echo "== creating partner account $user with sftpd-wrapper as login shell"
useradd -M -p '*' -s "$shell" -d "$work/home/$user" "$user"
mkdir -p "$work/home/$user/outbox"
echo "<invoice id=\"42\"/>" > "$work/home/$user/outbox/invoice-42.xml"
chown -R "$user:" "$work/home/$user"
cp "$work/keys/client.pub" "$work/keys/authorized/$user"

opts=(-i "$work/keys/client" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no
      -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR)
head -c 3000000 /dev/urandom > "$work/local/orders.csv"
cat > "$work/local/batch" <<'BATCH'
put orders.csv orders.csv.filepart
rename orders.csv.filepart orders.csv
get outbox/invoice-42.xml
mkdir archive
ls -l
BATCH

echo "== sftp session (upload, rename, download, mkdir)"
(cd "$work/local" && sftp -b batch -P "$port" "${opts[@]}" "$user@127.0.0.1")
cmp "$work/local/orders.csv" "$work/home/$user/orders.csv"
cmp "$work/local/invoice-42.xml" "$work/home/$user/outbox/invoice-42.xml"

echo "== ssh $user@127.0.0.1 id  (must be refused)"
if ssh -p "$port" "${opts[@]}" "$user@127.0.0.1" id; then
    echo "demo failed: the command was not refused" >&2
    exit 1
fi

# Both processes' last lines (the wrapper's and sftp-server's) and the refusal, before reading.
for _ in $(seq 200); do
    grep -q "session end .*user=$user " "$work/sftpd.log" 2>/dev/null &&
        grep -q "session closed for local user $user " "$work/sftpd.log" &&
        grep -q "session refused .*user=$user " "$work/sftpd.log" && break
    sleep 0.05
done
echo
echo "== $work/sftpd.log (what /var/log/sftpd.log holds on a real server)"
cat "$work/sftpd.log"
echo
echo "== post-session hook notes"
cat "$work/post-session.log"
echo
report=("$report_bin" --db "$work/sftpd.db" --config "$work/sftpd-wrapper.toml")
echo "== sftpd-report ingest $work/sftpd.log  (into $work/sftpd.db, SQLite)"
"${report[@]}" ingest "$work/sftpd.log"
echo
echo "== sftpd-report usage"
"${report[@]}" usage --format table
echo
echo "== sftpd-report transfers --path '*/invoice-42.xml'   (did the partner fetch the invoice?)"
"${report[@]}" transfers --path '*/invoice-42.xml' --format table
echo
echo "== sftpd-report sessions"
"${report[@]}" sessions --format table

# The demo is also the packages' end-to-end check: the reports must say what the session did.
check() { grep -q "$2" <<<"$1" || { echo "demo failed: $3" >&2; exit 1; }; }
sessions_csv=$("${report[@]}" sessions --format csv)
check "$sessions_csv" ",$user,127.0.0.1,.*,closed," "the session is not in the report as closed"
invoice_csv=$("${report[@]}" transfers --path '*/invoice-42.xml' --format csv)
check "$invoice_csv" ",$user,.*download" "the invoice download is not in the report"
usage_csv=$("${report[@]}" usage --format csv)
check "$usage_csv" ",$user,1,1,0,1,0,3000000," "usage does not show 1 session, 1 complete upload, 1 complete download, 3000000 bytes up"
check "$(cat "$work/post-session.log")" "post_session: $user from 127.0.0.1" "the post-session hook did not run"
echo
echo "== sftpd-report metrics   (Prometheus text format; --textfile for node_exporter)"
metrics=$("${report[@]}" metrics)
grep -v '^#' <<<"$metrics"
check "$metrics" "sftpd_sessions_total{host=\".*\",user=\"$user\"} 1" "the metrics do not count the session"
echo
month=$(date +%Y-%m)
echo "== sftpd-report statement --user $user --month $month   (one HTML page for finance)"
"${report[@]}" statement --user "$user" --month "$month" --output "$work/statement.html"
check "$(cat "$work/statement.html")" "SFTP statement for $user" "the statement does not name the partner"
check "$(cat "$work/statement.html")" "invoice-42.xml" "the statement does not list the invoice download"
if [ -n "${DEMO_STATEMENT:-}" ]; then
    cp "$work/statement.html" "$DEMO_STATEMENT"
    echo "statement copied to $DEMO_STATEMENT"
else
    echo "statement written to $work/statement.html (removed with the rest; DEMO_STATEMENT=PATH keeps a copy)"
fi
echo
echo "demo finished; cleaning up"
