#!/usr/bin/env python3
"""Tiny stdlib-only helper for kafka.sh (no kafka-python needed).

Subcommands:
  ports N                 print N currently free loopback TCP ports
  check-free PORT...      exit 1 (with a message) if any port is already bound
  cluster-id              print a random KRaft cluster id (Kafka Uuid format)
  wait BOOT --brokers K [--node ID] [--timeout S] [--pids P,P]
                          poll BOOT (host:port) with ApiVersions + Metadata until
                          K brokers are registered/unfenced (and node ID, if
                          given, is one of them) and a controller is known
  isr BOOT [--timeout S]  poll until every partition of every topic has
                          ISR == replicas and a live leader
  info BOOT               print brokers / controller / under-replicated count

Only the non-flexible Metadata v4..v8 and flexible v9..v13 wire formats are
implemented; the version is chosen from the broker's ApiVersions answer.
"""

import base64
import random
import socket
import struct
import sys
import time
import uuid

API_METADATA = 3
API_VERSIONS = 18
CLIENT_ID = b"kafka.sh-probe"


class ProtoError(Exception):
    pass


# --------------------------------------------------------------------------
# wire helpers


class Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ProtoError("short response")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self):
        shift = 0
        out = 0
        while True:
            b = self.take(1)[0]
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def string(self, flexible):
        n = self.uvarint() - 1 if flexible else self.i16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")

    def array_len(self, flexible):
        if flexible:
            return self.uvarint() - 1
        return self.i32()

    def tagged(self):
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


def _frame(api_key, api_version, corr, body, flexible_header):
    hdr = struct.pack(">hhi", api_key, api_version, corr)
    hdr += struct.pack(">h", len(CLIENT_ID)) + CLIENT_ID
    if flexible_header:
        hdr += b"\x00"  # empty tagged fields
    msg = hdr + body
    return struct.pack(">i", len(msg)) + msg


def _recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ProtoError("connection closed")
        out += chunk
    return bytes(out)


def _roundtrip(sock, api_key, api_version, corr, body, flexible):
    sock.sendall(_frame(api_key, api_version, corr, body, flexible))
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    r = Reader(_recv_exact(sock, size))
    if r.i32() != corr:
        raise ProtoError("correlation id mismatch")
    # ApiVersions responses always use header v0; others use v1 when flexible
    if flexible and api_key != API_VERSIONS:
        r.tagged()
    return r


def _connect(boot, timeout):
    host, _, port = boot.rpartition(":")
    return socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)


def api_versions(sock):
    r = _roundtrip(sock, API_VERSIONS, 0, 1, b"", False)
    err = r.i16()
    if err:
        raise ProtoError(f"ApiVersions error {err}")
    out = {}
    for _ in range(r.i32()):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        out[key] = (lo, hi)
    return out


def metadata(sock, versions, all_topics=False):
    lo, hi = versions.get(API_METADATA, (0, -1))
    ver = None
    for cand in (12, 13, 11, 10, 9, 8, 7, 6, 5, 4):
        if lo <= cand <= hi:
            ver = cand
            break
    if ver is None:
        raise ProtoError(f"no usable Metadata version in {(lo, hi)!r}")
    flexible = ver >= 9
    body = b""
    if flexible:
        body += b"\x00" if all_topics else b"\x01"  # null / empty compact array
    else:
        body += struct.pack(">i", -1 if all_topics else 0)
    body += b"\x00"  # allow_auto_topic_creation = false
    if 8 <= ver <= 10:
        body += b"\x00"  # include_cluster_authorized_operations
    if ver >= 8:
        body += b"\x00"  # include_topic_authorized_operations
    if flexible:
        body += b"\x00"  # tagged fields
    r = _roundtrip(sock, API_METADATA, ver, 2, body, flexible)
    r.i32()  # throttle
    brokers = []
    for _ in range(r.array_len(flexible)):
        node_id = r.i32()
        host = r.string(flexible)
        port = r.i32()
        r.string(flexible)  # rack
        if flexible:
            r.tagged()
        brokers.append((node_id, host, port))
    r.string(flexible)  # cluster id
    controller = r.i32()
    topics = []
    if all_topics:
        for _ in range(r.array_len(flexible)):
            terr = r.i16()
            name = r.string(flexible)
            if ver >= 10:
                r.take(16)  # topic id
            r.i8()  # is_internal
            parts = []
            for _ in range(r.array_len(flexible)):
                perr = r.i16()
                pidx = r.i32()
                leader = r.i32()
                if ver >= 7:
                    r.i32()  # leader epoch
                replicas = [r.i32() for _ in range(r.array_len(flexible))]
                isr = [r.i32() for _ in range(r.array_len(flexible))]
                if ver >= 5:
                    for _ in range(r.array_len(flexible)):
                        r.i32()
                if flexible:
                    r.tagged()
                parts.append((pidx, perr, leader, replicas, isr))
            if ver >= 8:
                r.i32()  # topic authorized operations
            if flexible:
                r.tagged()
            topics.append((name, terr, parts))
    return brokers, controller, topics


def query(boot, timeout=2.0, all_topics=False):
    with _connect(boot, timeout) as sock:
        sock.settimeout(timeout)
        versions = api_versions(sock)
        return metadata(sock, versions, all_topics)


# --------------------------------------------------------------------------
# commands


def _pids_alive(pids):
    dead = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            state = "gone"
        if state in ("Z", "X", "gone"):
            dead.append(pid)
    return dead


def _parse_opts(args):
    opts = {}
    pos = []
    it = iter(args)
    for a in it:
        if a.startswith("--"):
            opts[a[2:]] = next(it)
        else:
            pos.append(a)
    return pos, opts


def _bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cmd_ports(args):
    """Free ports *below* the kernel's ephemeral range, so that a port freed by
    `kafka.sh kill` cannot be grabbed by some client's outgoing connection
    before `kafka.sh restart` binds it again."""
    n = int(args[0])
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        eph_lo = 32768
    lo, hi = 20000, eph_lo - 1
    picked = []
    if hi - lo > 1000:
        rng = random.SystemRandom()
        for _ in range(2000):
            p = rng.randint(lo, hi)
            if p not in picked and _bindable(p):
                picked.append(p)
                if len(picked) == n:
                    break
    if len(picked) < n:  # fall back to whatever the kernel hands out
        socks = []
        try:
            while len(picked) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("127.0.0.1", 0))
                socks.append(s)
                picked.append(s.getsockname()[1])
        finally:
            for s in socks:
                s.close()
    print(" ".join(str(p) for p in picked))
    return 0


def cmd_check_free(args):
    busy = [p for p in args if not _bindable(int(p))]
    if busy:
        print("ports already in use on 127.0.0.1: {}".format(" ".join(busy)), file=sys.stderr)
        return 1
    return 0


def cmd_cluster_id(_args):
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            print(s)
            return 0


def cmd_wait(args):
    pos, opts = _parse_opts(args)
    boots = pos[0].split(",")
    want = int(opts.get("brokers", "1"))
    node = int(opts["node"]) if "node" in opts else None
    deadline = time.monotonic() + float(opts.get("timeout", "90"))
    pids = [int(p) for p in opts.get("pids", "").split(",") if p]
    last = "no answer yet"
    while True:
        dead = _pids_alive(pids)
        if dead:
            print(f"kafka process(es) {dead} died during startup", file=sys.stderr)
            return 2
        for boot in boots:
            try:
                brokers, controller, _ = query(boot, timeout=1.0)
            except (OSError, ProtoError) as exc:
                last = f"{boot}: {exc}"
                continue
            ids = sorted(b[0] for b in brokers)
            last = f"{boot}: brokers={ids} controller={controller}"
            if len(ids) >= want and controller >= 0 and (node is None or node in ids):
                return 0
        if time.monotonic() > deadline:
            print(f"timed out waiting for kafka ({last})", file=sys.stderr)
            return 1
        time.sleep(0.2)


def _under_replicated(topics, live):
    bad = []
    for name, terr, parts in topics:
        if terr:
            bad.append(f"{name}(error {terr})")
            continue
        for pidx, _perr, leader, replicas, isr in parts:
            if leader not in live or sorted(isr) != sorted(replicas):
                bad.append(f"{name}-{pidx}(leader={leader} isr={isr} replicas={replicas})")
    return bad


def cmd_isr(args):
    pos, opts = _parse_opts(args)
    boots = pos[0].split(",")
    deadline = time.monotonic() + float(opts.get("timeout", "60"))
    last = "no answer yet"
    while True:
        for boot in boots:
            try:
                brokers, _controller, topics = query(boot, timeout=2.0, all_topics=True)
            except (OSError, ProtoError) as exc:
                last = f"{boot}: {exc}"
                continue
            bad = _under_replicated(topics, {b[0] for b in brokers})
            if not bad:
                return 0
            last = f"{len(bad)} partition(s) not fully in sync, e.g. {', '.join(bad[:5])}"
            break
        if time.monotonic() > deadline:
            print(f"timed out waiting for ISR: {last}", file=sys.stderr)
            return 1
        time.sleep(0.25)


def cmd_info(args):
    last = None
    for boot in args[0].split(","):
        try:
            brokers, controller, topics = query(boot, timeout=2.0, all_topics=True)
        except (OSError, ProtoError) as exc:
            last = f"{boot}: {exc}"
            continue
        bad = _under_replicated(topics, {b[0] for b in brokers})
        ids = ",".join(str(b[0]) for b in sorted(brokers))
        print(f"answered-by={boot} brokers={ids} controller={controller} "
              f"topics={len(topics)} under-replicated={len(bad)}")
        return 0
    print(f"no broker answered ({last})", file=sys.stderr)
    return 1


COMMANDS = {
    "ports": cmd_ports,
    "check-free": cmd_check_free,
    "cluster-id": cmd_cluster_id,
    "wait": cmd_wait,
    "isr": cmd_isr,
    "info": cmd_info,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 64
    return COMMANDS[argv[1]](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
