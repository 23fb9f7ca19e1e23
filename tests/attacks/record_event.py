#!/usr/bin/python3
"""A hook for the adversarial suite: appends what it was told as one JSON line to argv[1].

Every SFTPD_* variable, as text (`env`) and as its exact bytes in hex (`hex`), and the JSON
object on stdin when there is one (`event_format = "json"`).
"""
import fcntl
import json
import os
import sys

record = {"env": {}, "hex": {}}
for key, value in os.environb.items():
    if key.startswith(b"SFTPD_"):
        name = key.decode()
        record["env"][name] = value.decode("utf-8", "replace")
        record["hex"][name] = value.hex()
try:
    payload = sys.stdin.buffer.read()
    record["stdin"] = json.loads(payload) if payload.strip() else None
except (OSError, ValueError):
    record["stdin"] = None
line = (json.dumps(record) + "\n").encode()
with open(sys.argv[1], "ab") as out:
    fcntl.flock(out, fcntl.LOCK_EX)
    out.write(line)
