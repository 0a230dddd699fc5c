#!/usr/bin/env python3
"""ICMP echo responder for the kube-node-ping fault lab (stdlib only).

Runs inside a lab host's network namespace (started with `ip netns exec`),
after the lab turned the kernel's own echo replies off
(net.ipv4.icmp_echo_ignore_all=1, net.ipv6.icmp.echo_ignore_all=1).

It answers IPv4 and IPv6 echo requests with the same identifier, sequence
number and payload, after `delay +- uniform(jitter)` milliseconds, and drops a
random `loss` percent of them. Replies are kept in a heap ordered by due time
and sent from a single select() loop, so accuracy does not depend on thread
scheduling. The delay is measured from the kernel's receive timestamp
(SO_TIMESTAMPNS), not from when Python got around to reading the packet.

Control protocol (stdin/stdout, one line each):
  start:  prints "ready" once both sockets are open
  stdin:  {"delayMs": 25, "jitterMs": 5, "lossPct": 0}  ->  prints "ok"
  stdin EOF (the lab process went away) -> exit
"""

import argparse
import ctypes
import heapq
import json
import os
import random
import select
import socket
import struct
import sys
import time

# Linux constants that Python's socket module does not (always) export.
IP_PKTINFO = 8
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1
SO_TIMESTAMPNS = 35
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
PR_SET_PDEATHSIG = 1
PR_SET_TIMERSLACK = 29
RT_PRIORITY = 20

ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Config:
    def __init__(self, delay_ms: float, jitter_ms: float, loss_pct: float) -> None:
        self.delay_ms = delay_ms
        self.jitter_ms = jitter_ms
        self.loss_pct = loss_pct

    def update(self, obj: dict) -> None:
        self.delay_ms = float(obj.get("delayMs", self.delay_ms))
        self.jitter_ms = float(obj.get("jitterMs", self.jitter_ms))
        self.loss_pct = float(obj.get("lossPct", self.loss_pct))

    def hold_seconds(self):
        """None means drop; otherwise how long to hold the reply."""
        if self.loss_pct > 0 and random.random() * 100.0 < self.loss_pct:
            return None
        ms = self.delay_ms
        if self.jitter_ms > 0:
            ms += random.uniform(-self.jitter_ms, self.jitter_ms)
        return max(ms, 0.0) / 1000.0


def best_effort_realtime() -> None:
    # Replies are only as accurate as our wake-ups. On a busy machine (say, a
    # compiler on every core) a normal task waits tens of ms for a CPU, so ask
    # for SCHED_FIFO: we sleep almost all the time, and the kernel's RT
    # throttling bounds the damage of any bug. Best effort: needs root/CAP_SYS_NICE.
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except (OSError, AttributeError) as e:
        sys.stderr.write("responder: no SCHED_FIFO (%s); delays may be late on a busy machine\n" % e)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # Die with the lab process even if stdin somehow stays open.
        libc.prctl(PR_SET_PDEATHSIG, 15, 0, 0, 0)
        # Default timer slack is 50 us; we want select() to wake on time.
        libc.prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    except Exception:
        pass


def open_v4() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    # ICMP_FILTER is a mask of types to *block*: let only echo requests in.
    s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ICMP_ECHO_REQUEST) & 0xFFFFFFFF))
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setblocking(False)
    return s


def open_v6() -> socket.socket:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    # struct icmp6_filter: 256 bits, a set bit blocks that type.
    words = [0xFFFFFFFF] * 8
    words[ICMP6_ECHO_REQUEST >> 5] &= ~(1 << (ICMP6_ECHO_REQUEST & 31)) & 0xFFFFFFFF
    s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setblocking(False)
    return s


def arrival_monotonic(ancdata, now_mono: float, now_real: float) -> float:
    """Kernel receive time (CLOCK_REALTIME) mapped onto time.monotonic()."""
    for level, ctype, data in ancdata:
        if level == socket.SOL_SOCKET and ctype == SCM_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            age = now_real - (sec + nsec / 1e9)
            if 0 <= age < 1.0:
                return now_mono - age
    return now_mono


def handle_v4(data: bytes, addr, ancdata):
    """Returns (reply_bytes, dest, ancillary) or None."""
    if len(data) < 20:
        return None
    ihl = (data[0] & 0x0F) * 4
    icmp = data[ihl:]
    if len(icmp) < 8 or icmp[0] != ICMP_ECHO_REQUEST or icmp[1] != 0:
        return None
    header_dst = data[16:20]
    spec_dst = None
    for level, ctype, cdata in ancdata:
        if level == socket.IPPROTO_IP and ctype == IP_PKTINFO and len(cdata) >= 12:
            _ifindex, spec_dst, _ipi_addr = struct.unpack("i4s4s", cdata[:12])
    # Like the kernel (icmp_echo_ignore_broadcasts), do not answer requests
    # that were not sent to our own unicast address.
    if spec_dst is not None and spec_dst != header_dst:
        return None
    if header_dst[0] >= 224:
        return None
    reply = bytearray(icmp)
    reply[0] = ICMP_ECHO_REPLY
    reply[2:4] = b"\0\0"
    reply[2:4] = struct.pack("!H", inet_checksum(bytes(reply)))
    anc = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", 0, header_dst, b"\0\0\0\0"))]
    return bytes(reply), (addr[0], 0), anc


def handle_v6(data: bytes, addr, ancdata):
    if len(data) < 8 or data[0] != ICMP6_ECHO_REQUEST or data[1] != 0:
        return None
    local = None
    ifindex = 0
    for level, ctype, cdata in ancdata:
        if level == socket.IPPROTO_IPV6 and ctype == socket.IPV6_PKTINFO and len(cdata) >= 20:
            local, ifindex = struct.unpack("16si", cdata[:20])
    if local is not None and local[0] == 0xFF:
        return None  # multicast destination
    reply = bytearray(data)
    reply[0] = ICMP6_ECHO_REPLY
    reply[2:4] = b"\0\0"  # the kernel fills in the ICMPv6 checksum (RFC 3542)
    anc = []
    if local is not None:
        anc = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("16si", local, ifindex))]
    return bytes(reply), addr, anc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--loss-pct", type=float, default=0.0)
    args = ap.parse_args()
    cfg = Config(args.delay_ms, args.jitter_ms, args.loss_pct)

    best_effort_realtime()
    s4 = open_v4()
    s6 = open_v6()
    handlers = {s4: handle_v4, s6: handle_v6}
    stdin_fd = sys.stdin.fileno()
    stdin_buf = b""

    heap = []  # (due_monotonic, tiebreak, sock, reply, dest, anc)
    counter = 0
    sys.stdout.write("ready\n")
    sys.stdout.flush()

    while True:
        timeout = None
        if heap:
            timeout = max(0.0, heap[0][0] - time.monotonic())
        readable, _, _ = select.select([s4, s6, stdin_fd], [], [], timeout)

        for r in readable:
            if r == stdin_fd:
                chunk = os.read(stdin_fd, 4096)
                if not chunk:
                    return 0
                stdin_buf += chunk
                while b"\n" in stdin_buf:
                    line, stdin_buf = stdin_buf.split(b"\n", 1)
                    if line.strip():
                        cfg.update(json.loads(line))
                        sys.stdout.write("ok\n")
                        sys.stdout.flush()
                continue
            while True:
                try:
                    data, ancdata, _flags, addr = r.recvmsg(65535, 256)
                except (BlockingIOError, InterruptedError):
                    break
                now_mono, now_real = time.monotonic(), time.time()
                parsed = handlers[r](data, addr, ancdata)
                if parsed is None:
                    continue
                hold = cfg.hold_seconds()
                if hold is None:
                    continue
                due = arrival_monotonic(ancdata, now_mono, now_real) + hold
                counter += 1
                heapq.heappush(heap, (due, counter, r, *parsed))

        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _due, _n, sock, reply, dest, anc = heapq.heappop(heap)
            try:
                sock.sendmsg([reply], anc, 0, dest)
            except OSError as e:  # e.g. the lab is being torn down
                sys.stderr.write("responder: send to %s failed: %s\n" % (dest[0], e))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
