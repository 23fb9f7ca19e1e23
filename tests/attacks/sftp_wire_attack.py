#!/usr/bin/python3
"""Raw SFTP attacks on what capture mode reports (issue 26), for the adversarial suite.

Speaks SFTP version 3 packet by packet over a paramiko channel, so that requests can carry
what no ordinary client sends (handles of any length, writes at impossible offsets, requests
written ahead of their answers) and the connection can vanish at any moment.

    sftp_wire_attack.py PORT USER KEYFILE MODE [ARGS...]

Names are hex-encoded bytes, relative to the home directory unless they start with /.

    refused OTHER_HEX      operations sftp-server refuses: a .filepart renamed onto OTHER (another
                           partner's file), remove /etc/passwd, rmdir /etc, a rename of a missing
                           file, mkdirs of existing or forbidden directories, a curl-like
                           exists.xml.filepart whose rename onto exists.xml fails; then a
                           fresh.xml.filepart renamed to fresh.xml, which works
    flood SECONDS WINDOW NAME_HEX
                           opens NAME, then never reads a reply (an SSH window of WINDOW bytes):
                           6 READs of 64 KiB of NAME, then READs with 250,000-byte handles for
                           SECONDS
    wrong_close NAME_HEX   opens NAME for reading, then for writing, writes 1,015,808 bytes and
                           closes the writer first
    bad_write NAME_HEX     writes 5 bytes, then 5 at an offset lseek refuses, then closes
    copy SRC_HEX DST_HEX COUNT LENGTH
                           COUNT copy-data requests of LENGTH bytes (0: to the source's end) from
                           SRC into DST, at successive offsets
    copy_read SRC_HEX DST_HEX
                           opens DST for reading and writing, copy-data of nothing (SRC is empty)
                           into it, then reads DST to its EOF and closes both
    blind LONG_HEX SHORT_HEX
                           WRITEs with 300- and 250,000-byte handles, then uploads of 100,000
                           bytes to LONG and 5,000 to SHORT
    lagging PAIRS NAME_HEX...
                           PAIRS mkdir/rmdir pairs written ahead of their answers (log lines for a
                           stalled syslog to queue), then 1,000+i bytes to the i-th NAME, a WRITE
                           with a 300-byte handle, and 7 bytes to each NAME + ".after"
    vanish_upload NAME_HEX writes 10 x 32 KiB answered, 20 x 32 KiB unanswered, then the process
                           exits without closing anything (a dropped connection)
    vanish_download NAME_HEX
                           reads NAME to its EOF, then exits without CLOSE
    links                  hardlink@openssh.com order.xml -> inbox/order.xml, SYMLINK passwd-link
                           -> /etc/passwd, and two links sftp-server refuses
    probes COUNT [refused] COUNT lstat probes of missing names, and stat, realpath and opendir of
                           missing names; with `refused`, a remove of /etc/passwd too

Prints one JSON object per step: {"step": ..., "ok": true|false, "detail": ...}; `ok` is whether
sftp-server answered the step's requests with OK (or what it was asked for).
"""
import json
import os
import socket
import struct
import sys
import time

import paramiko

INIT, VERSION, OPEN, CLOSE, READ, WRITE, LSTAT = 1, 2, 3, 4, 5, 6, 7
OPENDIR, REMOVE, MKDIR, RMDIR, REALPATH, STAT, RENAME, SYMLINK = 11, 13, 14, 15, 16, 17, 18, 20
EXTENDED = 200
STATUS, HANDLE, DATA, NAME = 101, 102, 103, 104
FX_OK, FX_EOF = 0, 1
F_READ, F_WRITE, F_CREAT, F_TRUNC = 0x01, 0x02, 0x08, 0x10
WRITE_NEW = F_WRITE | F_CREAT | F_TRUNC


def string(b):
    return struct.pack(">I", len(b)) + b


def packet(kind, body):
    return struct.pack(">IB", len(body) + 1, kind) + body


def step(name, ok, detail=""):
    print(json.dumps({"step": name, "ok": bool(ok), "detail": str(detail)[:300]}), flush=True)


class Sftp:
    def __init__(self, chan):
        self.chan = chan
        self.buf = b""
        self.next_id = 1
        self.replies = {}
        chan.sendall(packet(INIT, struct.pack(">I", 3)))
        kind, _ = self.packet()
        assert kind == VERSION, kind

    def packet(self):
        while True:
            if len(self.buf) >= 4:
                length = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + length:
                    body = self.buf[4:4 + length]
                    self.buf = self.buf[4 + length:]
                    return body[0], body[1:]
            data = self.chan.recv(1 << 20)
            if not data:
                raise EOFError("sftp-server's channel closed")
            self.buf += data

    def send(self, kind, body):
        """Sends a request without waiting; returns its id."""
        rid = self.next_id
        self.next_id += 1
        self.chan.sendall(packet(kind, struct.pack(">I", rid) + body))
        return rid

    def reply(self, rid):
        """The answer to request `rid`: (type, body after the id)."""
        while rid not in self.replies:
            kind, body = self.packet()
            self.replies[struct.unpack(">I", body[:4])[0]] = (kind, body[4:])
        return self.replies.pop(rid)

    def call(self, kind, body):
        return self.reply(self.send(kind, body))

    def status(self, kind, body):
        """The status code of a reply (-1 for a reply that is not a status)."""
        return struct.unpack(">I", body[:4])[0] if kind == STATUS else -1

    def call_status(self, kind, body):
        return self.status(*self.call(kind, body))

    def open(self, name, pflags):
        kind, body = self.call(OPEN, string(name) + struct.pack(">II", pflags, 0))
        if kind != HANDLE:
            return None
        return body[4:4 + struct.unpack(">I", body[:4])[0]]

    def write(self, handle, offset, data):
        return self.call_status(WRITE, string(handle) + struct.pack(">Q", offset) + string(data))

    def write_ahead(self, handle, offset, data):
        return self.send(WRITE, string(handle) + struct.pack(">Q", offset) + string(data))

    def read(self, handle, offset, length):
        kind, body = self.call(READ, string(handle) + struct.pack(">QI", offset, length))
        if kind == DATA:
            return body[4:4 + struct.unpack(">I", body[:4])[0]]
        return self.status(kind, body)

    def close(self, handle):
        return self.call_status(CLOSE, string(handle))

    def extended(self, name, body):
        return self.call_status(EXTENDED, string(name) + body)

    def put(self, name, size, chunk=32768):
        """Uploads `size` bytes; True when every request was answered OK."""
        handle = self.open(name, WRITE_NEW)
        if handle is None:
            return False
        ok = True
        for off in range(0, size, chunk):
            ok = self.write(handle, off, b"u" * min(chunk, size - off)) == FX_OK and ok
        return self.close(handle) == FX_OK and ok


def connect(port, user, keyfile):
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=int(port), username=user, key_filename=keyfile,
                   look_for_keys=False, allow_agent=False, timeout=20)
    return client


def subsystem(client, window=None):
    transport = client.get_transport()
    chan = transport.open_session(window_size=window) if window else transport.open_session()
    chan.invoke_subsystem("sftp")
    return chan


def refused(s, other):
    step("put evil.filepart", s.put(b"evil.filepart", 123))
    step("rename evil.filepart onto the other partner's file",
         s.call_status(RENAME, string(b"evil.filepart") + string(other)) == FX_OK)
    step("posix-rename evil.filepart onto the other partner's file",
         s.extended(b"posix-rename@openssh.com", string(b"evil.filepart") + string(other)) == FX_OK)
    step("remove /etc/passwd", s.call_status(REMOVE, string(b"/etc/passwd")) == FX_OK)
    step("rmdir /etc", s.call_status(RMDIR, string(b"/etc")) == FX_OK)
    step("rename does-not-exist to /etc/shadow",
         s.call_status(RENAME, string(b"does-not-exist") + string(b"/etc/shadow")) == FX_OK)
    kind, body = s.call(REALPATH, string(b"."))
    home = body[8:8 + struct.unpack(">I", body[4:8])[0]] if kind == NAME else b"/nonexistent"
    for d in [b"/tmp", b"/etc/sftpd-evil", home]:
        step("mkdir " + d.decode("utf-8", "replace"),
             s.call_status(MKDIR, string(d) + struct.pack(">I", 0)) == FX_OK)
    step("put exists.xml.filepart", s.put(b"exists.xml.filepart", 200))
    step("rename exists.xml.filepart onto exists.xml",
         s.call_status(RENAME, string(b"exists.xml.filepart") + string(b"exists.xml")) == FX_OK)
    # And the rename that works, for contrast.
    step("put fresh.xml.filepart", s.put(b"fresh.xml.filepart", 300))
    step("rename fresh.xml.filepart to fresh.xml",
         s.call_status(RENAME, string(b"fresh.xml.filepart") + string(b"fresh.xml")) == FX_OK)


def flood(client, seconds, window, name):
    s = Sftp(subsystem(client, window))
    chan = s.chan
    good = s.open(name, F_READ)
    step("open", good is not None)
    time.sleep(1)
    # From here on no answer is read: they stay in paramiko's buffer and the SSH window (WINDOW
    # bytes) stays shut. Six 64 KiB answers to READs of a real handle fill the way back beyond
    # the wrapper (the window, sshd, its 256 KiB pipe), not sftp-server's pipe to the wrapper:
    # sftp-server goes on reading requests, and each READ with a 250 KB handle waits in the
    # wrapper for an answer that cannot pass.
    for i in range(6):
        s.send(READ, string(good) + struct.pack(">QI", 0, 65536))
    handle = b"h" * 250_000
    sent, first = 0, s.next_id
    rid = first
    chan.settimeout(0.5)
    deadline = time.time() + seconds
    while time.time() < deadline:
        data = packet(READ, struct.pack(">I", rid) + string(handle) + struct.pack(">QI", 0, 32768))
        rid += 1
        view = memoryview(data)
        while view and time.time() < deadline:
            try:
                n = chan.send(view)
            except socket.timeout:
                continue
            sent += n
            view = view[n:]
    step("flood", True, json.dumps({"bytes_sent": sent, "requests": rid - first}))


def wrong_close(s, name):
    reader = s.open(name, F_READ)
    writer = s.open(name, WRITE_NEW)
    step("open for reading, then for writing", reader is not None and writer is not None)
    ok = all(s.write(writer, off, b"w" * 32768) == FX_OK for off in range(0, 1_015_808, 32768))
    step("write 1,015,808 bytes", ok)
    step("close the writer", s.close(writer) == FX_OK)
    step("close the reader", s.close(reader) == FX_OK)


def bad_write(s, name):
    handle = s.open(name, WRITE_NEW)
    step("open", handle is not None)
    step("write 5 bytes", s.write(handle, 0, b"12345") == FX_OK)
    # Past off_t's range: lseek refuses it (EINVAL) and sftp-server answers a failure.
    step("write at an invalid offset", s.write(handle, 0xFFFF_FFFF_FFFF_FF00, b"67890") == FX_OK)
    step("close", s.close(handle) == FX_OK)


def copy(s, src, dst, count, length):
    hs = s.open(src, F_READ)
    hd = s.open(dst, WRITE_NEW)
    step("open source and destination", hs is not None and hd is not None)
    answers = [s.extended(b"copy-data", string(hs) + struct.pack(">QQ", 0, length) + string(hd)
                          + struct.pack(">Q", i * length)) for i in range(count)]
    step("copy-data", all(a == FX_OK for a in answers), f"{answers.count(FX_OK)} of {count} OK")
    step("close destination", s.close(hd) == FX_OK)
    step("close source", s.close(hs) == FX_OK)


def read_to_eof(s, handle):
    off = 0
    while True:
        got = s.read(handle, off, 32768)
        if isinstance(got, int):
            break
        off += len(got)
    step("read to EOF", got == FX_EOF, off)


def copy_read(s, src, dst):
    hs = s.open(src, F_READ)
    hd = s.open(dst, F_READ | F_WRITE)
    step("open source and destination", hs is not None and hd is not None)
    code = s.extended(b"copy-data", string(hs) + struct.pack(">QQ", 0, 0) + string(hd)
                      + struct.pack(">Q", 0))
    step("copy-data of nothing", code == FX_OK, code)
    read_to_eof(s, hd)
    step("close destination", s.close(hd) == FX_OK)
    step("close source", s.close(hs) == FX_OK)


def blind(s, long_name, short_name):
    for n in (300, 250_000):
        code = s.call_status(WRITE, string(b"\0" * n) + struct.pack(">Q", 0) + string(b"x" * 16))
        step(f"WRITE with a {n}-byte handle", code == FX_OK, code)
    step("put the long name", s.put(long_name, 100_000))
    step("put the short name", s.put(short_name, 5_000))


def lagging(s, pairs, names):
    ids = []
    for i in range(pairs):
        d = b"lag%d" % i
        ids.append(s.send(MKDIR, string(d) + struct.pack(">I", 0)))
        ids.append(s.send(RMDIR, string(d)))
    # Not waiting for their answers: with the log reader stalled, sftp-server can still answer
    # while the lines it logs fit into its stderr socket.
    for i, name in enumerate(names):
        step("put " + name[-12:].decode("utf-8", "replace"), s.put(name, 1000 + i))
    code = s.call_status(WRITE, string(b"\0" * 300) + struct.pack(">Q", 0) + string(b"x"))
    step("WRITE with a 300-byte handle", code == FX_OK, code)
    for name in names:
        step("put " + name[-12:].decode("utf-8", "replace") + ".after", s.put(name + b".after", 7))
    step("log noise", all(s.status(*s.reply(i)) == FX_OK for i in ids), len(ids))


def vanish_upload(s, name):
    handle = s.open(name, WRITE_NEW)
    step("open", handle is not None)
    ok = all(s.write(handle, i * 32768, b"v" * 32768) == FX_OK for i in range(10))
    step("10 writes answered", ok)
    for i in range(10, 30):
        s.write_ahead(handle, i * 32768, b"v" * 32768)
    step("20 writes in flight, then gone", True)
    sys.stdout.flush()
    os._exit(0)


def vanish_download(s, name):
    handle = s.open(name, F_READ)
    step("open", handle is not None)
    read_to_eof(s, handle)
    sys.stdout.flush()
    os._exit(0)


def links(s):
    step("mkdir inbox", s.call_status(MKDIR, string(b"inbox") + struct.pack(">I", 0)) == FX_OK)
    step("hardlink order.xml to inbox/order.xml",
         s.extended(b"hardlink@openssh.com", string(b"order.xml") + string(b"inbox/order.xml"))
         == FX_OK)
    # OpenSSH's order: the link's target first, then the new name.
    step("symlink passwd-link to /etc/passwd",
         s.call_status(SYMLINK, string(b"/etc/passwd") + string(b"passwd-link")) == FX_OK)
    step("hardlink onto an existing name",
         s.extended(b"hardlink@openssh.com", string(b"order.xml") + string(b"inbox/order.xml"))
         == FX_OK)
    step("symlink into /etc",
         s.call_status(SYMLINK, string(b"/etc/passwd") + string(b"/etc/evil-link")) == FX_OK)


def probes(s, count, refused_too):
    codes = [s.call_status(LSTAT, string(b"missing-%d" % i)) for i in range(count)]
    step("lstat probes", all(c != FX_OK for c in codes), f"{len(codes)} probes")
    codes = [s.call_status(STAT, string(b"missing-stat")),
             s.call_status(OPENDIR, string(b"missing-dir"))]
    kind, body = s.call(REALPATH, string(b"missing-real/x"))
    step("stat, opendir, realpath of missing names", all(c != FX_OK for c in codes), codes)
    if refused_too:
        step("remove /etc/passwd", s.call_status(REMOVE, string(b"/etc/passwd")) == FX_OK)


def main():
    port, user, keyfile, mode = sys.argv[1:5]
    args = sys.argv[5:]
    h = [bytes.fromhex(a) for a in args] if mode not in ("flood", "copy", "lagging", "probes") \
        else None
    client = connect(port, user, keyfile)
    if mode == "flood":
        flood(client, float(args[0]), int(args[1]), bytes.fromhex(args[2]))
        client.close()
        return
    s = Sftp(subsystem(client))
    if mode == "refused":
        refused(s, h[0])
    elif mode == "wrong_close":
        wrong_close(s, h[0])
    elif mode == "bad_write":
        bad_write(s, h[0])
    elif mode == "copy":
        copy(s, bytes.fromhex(args[0]), bytes.fromhex(args[1]), int(args[2]), int(args[3]))
    elif mode == "copy_read":
        copy_read(s, h[0], h[1])
    elif mode == "blind":
        blind(s, h[0], h[1])
    elif mode == "lagging":
        lagging(s, int(args[0]), [bytes.fromhex(a) for a in args[1:]])
    elif mode == "vanish_upload":
        vanish_upload(s, h[0])
    elif mode == "vanish_download":
        vanish_download(s, h[0])
    elif mode == "links":
        links(s)
    elif mode == "probes":
        probes(s, int(args[0]), len(args) > 1 and args[1] == "refused")
    else:
        raise SystemExit("unknown mode " + mode)
    s.chan.close()
    client.close()


if __name__ == "__main__":
    main()
