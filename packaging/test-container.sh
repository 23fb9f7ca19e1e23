#!/usr/bin/env bash
# The container (packaging/container): builds a Debian base with debootstrap from this machine's
# apt source (no image registry is needed; the base is cached under /var/cache), imports it into
# Podman, builds the image on it, runs it with its port on 127.0.0.1 and the capabilities of
# current Podman (no MKNOD, AUDIT_WRITE or NET_RAW), then, with the real clients: an upload and a
# download with sftp, `ssh ... id` refused, no /proc in the partner's jail, the session lines in
# `podman logs`, the bytes in `podman exec ... sftpd-report usage`; after `podman restart` the
# same host key, the same database and a new session. Prints `container: 1 passed, 0 failed` (or
# `0 passed, 1 failed`). Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-container.sh must run as root" >&2; exit 1; }

suite=bookworm
base_image=localhost/sftpd-wrapper-test-base:$suite
image=localhost/sftpd-wrapper:test
name=sftpd-wrapper-test-$$
work=$(mktemp -d)
podman_args=()
failed=1
started=$SECONDS

say() { echo "== $*"; }
cleanup() {
    set +e
    if podman container exists "$name" 2>/dev/null; then
        [ "$failed" -eq 0 ] || { echo "--- podman logs $name"; podman logs "$name" 2>&1 | tail -n 60; }
        podman "${podman_args[@]}" rm -f -t 5 "$name" >/dev/null 2>&1
    fi
    for v in data keys log db; do podman volume rm -f "$name-$v" >/dev/null 2>&1; done
    rm -rf "$work"
    if [ "$failed" -eq 0 ]; then
        echo "container: 1 passed, 0 failed"
    else
        echo "container: 0 passed, 1 failed"
    fi
}
trap cleanup EXIT
fail() {
    echo "test-container: FAILED: $*" >&2
    exit 1
}

need=()
for tool in podman:podman debootstrap:debootstrap runc:runc sftp:openssh-client python3:python3; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The base: debootstrap --variant=minbase from the apt source this machine uses, cached.
if ! podman image exists "$base_image"; then
    mirror=$(apt-get indextargets --format '$(REPO_URI)' "Codename: $suite" 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian/
    cache=/var/cache/sftpd-wrapper-test
    [ -d /var/cache ] || cache=$work
    mkdir -p "$cache"
    tarball=$cache/$suite-minbase.tar
    if [ ! -s "$tarball" ]; then
        say "debootstrap --variant=minbase $suite from $mirror"
        root=$work/root
        debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
            || { tail -n 20 "$work/debootstrap.log"; fail "debootstrap failed"; }
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
    fi
    say "podman import $tarball"
    podman import "$tarball" "$base_image" >/dev/null
fi

# What this machine's Podman needs beyond its defaults, found by trying: kept here, never in the
# product.
conf=$work/containers.conf
printf '[containers]\ndefault_ulimits = []\n' >"$conf"
probe() { podman "$@" run --rm "$base_image" true >/dev/null 2>&1; }
if probe; then
    :
elif probe --runtime runc; then
    podman_args=(--runtime runc)
    echo "test-container: this machine's Podman needs --runtime runc (its default runtime refuses hybrid cgroups)"
elif CONTAINERS_CONF=$conf probe; then
    export CONTAINERS_CONF=$conf
    echo "test-container: this machine's Podman needs default_ulimits = [] (CONTAINERS_CONF=$conf): setrlimit is refused here"
elif CONTAINERS_CONF=$conf probe --runtime runc; then
    export CONTAINERS_CONF=$conf
    podman_args=(--runtime runc)
    echo "test-container: this machine's Podman needs --runtime runc (its default runtime refuses hybrid cgroups) and default_ulimits = [] (CONTAINERS_CONF=$conf): setrlimit is refused here"
else
    podman run --rm "$base_image" true || true
    fail "podman cannot run a container here"
fi
pm() { podman "${podman_args[@]}" "$@"; }

say "build $image on $base_image"
old_id=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
bash packaging/container/build.sh -t "$image" --build-arg BASE="$base_image" --pull=never \
    "${podman_args[@]}" >"$work/build.log" 2>&1 \
    || { tail -n 40 "$work/build.log"; fail "the image does not build"; }
new_id=$(podman image inspect --format '{{.Id}}' "$image")
# The previous test image, untagged by the new one (its Debian layer is shared and stays).
[ -z "$old_id" ] || [ "$old_id" = "$new_id" ] || podman rmi "$old_id" >/dev/null 2>&1 || true

ssh-keygen -q -t ed25519 -N '' -C alice -f "$work/alice"
ssh-keygen -q -t ed25519 -N '' -C bob -f "$work/bob"
cat >"$work/partners" <<EOF
# name  uid   key
alice   2901  $(cat "$work/alice.pub")
bob     2902  $(cat "$work/bob.pub")
EOF
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

ready_count() { pm logs "$name" 2>&1 | grep -c 'sftpd-container: ready:' || true; }
wait_ready() {
    local want=$1
    for _ in $(seq 120); do
        [ "$(ready_count)" -ge "$want" ] && return 0
        [ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ] \
            || fail "the container stopped: $(pm logs "$name" 2>&1 | tail -n 20)"
        sleep 0.5
    done
    fail "the container did not get ready in 60 s"
}

say "run $image on 127.0.0.1:$port"
# --cap-drop: Docker's defaults less what current Podman leaves out, so the container is seen to
# work without CAP_MKNOD (the jails' /dev/null) whichever engine runs it.
pm run -d --name "$name" --hostname sftptest -p "127.0.0.1:$port:22" \
    --cap-drop MKNOD --cap-drop AUDIT_WRITE --cap-drop NET_RAW \
    -v "$work/partners:/etc/sftpd-container/partners:ro" \
    -v "$name-data:/srv/sftp:dev" -v "$name-keys:/etc/ssh/keys" \
    -v "$name-log:/var/log/sftpd" -v "$name-db:/var/lib/sftpd-wrapper" \
    "$image" >/dev/null
wait_ready 1

host_key() {
    for _ in $(seq 20); do
        ssh-keyscan -p "$port" -t ed25519 127.0.0.1 2>/dev/null | awk '{ print $2, $3 }' | grep . && return 0
        sleep 0.5
    done
    fail "no host key from 127.0.0.1:$port"
}
key_before=$(host_key)
echo "[127.0.0.1]:$port $key_before" >"$work/known_hosts"
ssh_opts=(-o BatchMode=yes -o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=yes
    -o IdentitiesOnly=yes -o ConnectTimeout=10)

head -c 1234567 /dev/urandom >"$work/upload.bin"
say "sftp: upload and download as alice"
cat >"$work/batch" <<EOF
put $work/upload.bin report.bin
get report.bin $work/download.bin
ls -l
EOF
sftp "${ssh_opts[@]}" -i "$work/alice" -P "$port" -b "$work/batch" alice@127.0.0.1 >"$work/sftp.out" 2>&1 \
    || { cat "$work/sftp.out"; fail "the SFTP session failed"; }
cmp -s "$work/upload.bin" "$work/download.bin" || fail "the downloaded file differs from the upload"

say "the jail: no /proc, no other partner"
printf 'pwd\nls /\nls /proc\n' >"$work/batch2"
sftp "${ssh_opts[@]}" -i "$work/alice" -P "$port" -b "$work/batch2" alice@127.0.0.1 >"$work/sftp2.out" 2>&1 || true
grep -q 'Remote working directory: /home/alice' "$work/sftp2.out" || { cat "$work/sftp2.out"; fail "alice does not start in /home/alice"; }
! grep -qx 'proc' <(sed -n '/ls \//,/ls \/proc/p' "$work/sftp2.out" | tr -s ' \t' '\n') \
    || { cat "$work/sftp2.out"; fail "alice's jail has a /proc"; }
printf 'ls /home/bob\n' >"$work/batch3"
! sftp "${ssh_opts[@]}" -i "$work/alice" -P "$port" -b "$work/batch3" alice@127.0.0.1 >"$work/sftp3.out" 2>&1 \
    || { cat "$work/sftp3.out"; fail "alice can list /home/bob"; }

say "ssh ... id is refused"
if ssh "${ssh_opts[@]}" -i "$work/alice" -p "$port" alice@127.0.0.1 id >"$work/ssh.out" 2>&1; then
    cat "$work/ssh.out"
    fail "ssh alice@... id ran"
fi
grep -q 'restricted to SFTP' "$work/ssh.out" || { cat "$work/ssh.out"; fail "ssh ... id: no refusal message"; }
grep -q 'uid=' "$work/ssh.out" && fail "ssh ... id printed an id"

say "podman logs: the session lines"
for _ in $(seq 20); do
    pm logs "$name" >"$work/logs" 2>&1 || true
    grep -q "session end .*user=alice " "$work/logs" && grep -q 'session refused' "$work/logs" && break
    sleep 0.5
done
grep -Eq 'sftpd-wrapper\[[0-9]+\]: session start .*user=alice ' "$work/logs" || fail "no session start line for alice in podman logs"
grep -Eq 'sftpd-wrapper\[[0-9]+\]: session end .*user=alice ' "$work/logs" || fail "no session end line for alice in podman logs"
grep -E 'sftp-server\[[0-9]+\]: close "/home/alice/report.bin" bytes read 0 written 1234567' "$work/logs" >/dev/null \
    || fail "no close line with the upload's bytes in podman logs"
grep -q 'session refused' "$work/logs" || fail "no session refused line in podman logs"
pm exec "$name" test -s /var/log/sftpd/sftpd.log || fail "the log file on the volume is empty"

usage_line() { pm exec "$name" sftpd-report usage --by month 2>&1 | grep alice || true; }
say "podman exec $name sftpd-report usage"
for _ in $(seq 20); do
    usage=$(usage_line)
    grep -q 1234567 <<<"$usage" && break
    sleep 0.5
done
echo "$usage"
grep -q 1234567 <<<"$usage" || fail "sftpd-report usage does not show alice's 1234567 bytes: $(pm exec "$name" sftpd-report usage 2>&1)"

say "podman restart: the same host key, the same database"
pm restart -t 20 "$name" >/dev/null
wait_ready 2
# Read whole before grep: `grep -q` leaving early would end podman logs with SIGPIPE, which
# pipefail takes for a failure.
pm logs "$name" >"$work/logs-restart" 2>&1 || true
grep -q 'sftpd-container: stopped' "$work/logs-restart" || fail "the container did not stop through its own stop sequence"
key_after=$(host_key)
[ "$key_after" = "$key_before" ] || fail "the host key changed across the restart"
usage_after=$(usage_line)
[ "$usage_after" = "$usage" ] || fail "the database changed across the restart: before '$usage', after '$usage_after'"
printf 'get report.bin %s\n' "$work/download2.bin" >"$work/batch4"
sftp "${ssh_opts[@]}" -i "$work/alice" -P "$port" -b "$work/batch4" alice@127.0.0.1 >"$work/sftp4.out" 2>&1 \
    || { cat "$work/sftp4.out"; fail "no SFTP session after the restart"; }
cmp -s "$work/upload.bin" "$work/download2.bin" || fail "alice's file is not the same after the restart"

failed=0
say "done in $((SECONDS - started)) s"
