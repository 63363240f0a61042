#!/usr/bin/python3
"""Exits 0 when the ZooKeeper server at HOST PORT says it leads (its `srvr` four-letter
command answers "Mode: leader"): chaos-runner's --node-leads for ZooKeeper."""
import socket
import sys

try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
        s.sendall(b"srvr")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
except OSError:
    sys.exit(1)
sys.exit(0 if b"Mode: leader" in answer else 1)
