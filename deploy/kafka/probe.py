#!/usr/bin/env python3
"""Helper for kafka.sh: free ports, a cluster id, and readiness through kafka-python.

Subcommands:
  ports N                 print N currently free loopback TCP ports
  check-free PORT...      exit 1 (with a message) if any port is already bound
  cluster-id              print a random KRaft cluster id (Kafka Uuid format)
  wait BOOT --brokers K [--node ID] [--timeout S] [--pids P,P]
                          poll BOOT (host:port) until K unfenced brokers are
                          registered (and node ID, if given, is one of them)
                          and a controller is known
  isr BOOT [--timeout S]  poll until every partition of every topic has
                          ISR == replicas and a live leader
  info BOOT               print brokers / controller / under-replicated count

The cluster is asked with kafka-python's admin client (DescribeCluster, Metadata),
so this runs under the project's virtualenv (kafka.sh picks it); ports and ids
need only the standard library.
"""

import base64
import logging
import random
import socket
import sys
import time
import uuid

CLIENT_ID = "kafka.sh-probe"


class ProtoError(Exception):
    """The cluster could not be asked (no broker answered, or it answered an error)."""


def query(boot, timeout=2.0, all_topics=False):
    """``(brokers, controller, topics)`` as BOOT's cluster reports them: the unfenced
    broker ids, the controller id (-1 if none), and for each topic
    ``(name, error, [(partition, error, leader, replicas, isr)])``."""
    from kafka import KafkaAdminClient  # noqa: PLC0415 - ports and ids need no kafka-python
    from kafka.errors import KafkaError  # noqa: PLC0415

    timeout_ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(bootstrap_servers=boot, client_id=CLIENT_ID,
                                 request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
    except KafkaError as exc:
        raise ProtoError(str(exc)) from exc
    try:
        cluster = admin.describe_cluster()
        brokers = [b["broker_id"] for b in cluster["brokers"] if not b.get("is_fenced")]
        controller = cluster["controller_id"] if cluster["controller_id"] is not None else -1
        topics = []
        if all_topics:
            for topic in admin.describe_topics():
                parts = [(part["partition_index"], part["error_code"], part["leader_id"],
                          part["replica_nodes"], part["isr_nodes"])
                         for part in topic["partitions"]]
                topics.append((topic["name"], topic["error_code"], parts))
        return brokers, controller, topics
    except KafkaError as exc:
        raise ProtoError(str(exc)) from exc
    finally:
        admin.close()


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
            ids = sorted(brokers)
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
            bad = _under_replicated(topics, set(brokers))
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
        bad = _under_replicated(topics, set(brokers))
        ids = ",".join(str(b) for b in sorted(brokers))
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
    kafka_log = logging.getLogger("kafka")  # its connection errors are this probe's to tell
    kafka_log.addHandler(logging.NullHandler())
    kafka_log.propagate = False
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 64
    return COMMANDS[argv[1]](argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
