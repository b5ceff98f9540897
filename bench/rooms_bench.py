#!/usr/bin/env python3
"""Rooms benchmark: room messages from Redis Streams (and POST /v1/events) to mock APNs.

A benchmark, not a test: it prints figures. One pushrelayd follows a Redis stream
(a redis-server this script starts on a free loopback port) and delivers to a mock
APNs (tests/mocks/mock_apns --no-record --record-times). [rooms] coalesce_window = 0,
nobody is present, so every message notifies each away member at once.

(a) Throughput.
    Fan-out: one message to a room of --members members (one APNs device each),
    XADDed to the stream, and the same through POST /v1/events; notifications/s from
    the XADD (or the POST) to the last request's arrival at the mock (its own clock,
    --record-times), once it answered all of them; median of --runs.
    1:1 rooms: --messages messages round-robin over --rooms rooms of two members
    (the sender, without a device, and the away recipient), XADDed as fast as one
    pipelined connection goes (RESP spoken over a socket); and the same in POST
    /v1/events batches of [events] max_batch, posted over --events-connections
    connections at once. Notifications/s delivered, from the first XADD (or POST),
    and from the first request at the mock: while the XADDs go in, Redis has little
    time for the daemon's reads, so the first figure ramps up.
(b) Latency: XADD -> the request arriving at the mock (both clocks are this host's
    CLOCK_REALTIME), at a steady --rate messages/s for --seconds over the 1:1 rooms,
    written in one batch every --tick-ms (1 ms: 20 messages at 20,000/s; --tick-ms 10
    sends bursts of 200, which the daemon works through one after the other).
    p50/p90/p99/max and the achieved rate. If the rate is not sustained, lower rates
    are tried to find the highest that is, and the CPU of each process (from
    /proc/PID/stat) tells what saturates.

For context, h2load sends requests of the same shape straight to the same mock.

Run from a configured build tree (after `make src/pushrelayd tests/mocks/mock_apns`):
    python3 bench/rooms_bench.py [--members 10000] [--rooms 2000] [--messages 20000]
                                 [--rate 20000] [--seconds 5] [--perf]
Environment: PUSHRELAYD, PUSHRELAY_TOP_SRCDIR, PUSHRELAY_TOP_BUILDDIR (defaults: this
source tree and the current directory as the build tree). Needs redis-server and
h2load (Debian: redis-server, nghttp2-client); --perf needs perf.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
os.environ.setdefault("PUSHRELAY_TOP_SRCDIR", SRCDIR)
os.environ.setdefault("PUSHRELAY_TOP_BUILDDIR", os.getcwd())
os.environ.setdefault("PUSHRELAYD", os.path.join(os.environ["PUSHRELAY_TOP_BUILDDIR"],
                                                 "src", "pushrelayd"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))

import fixtures  # noqa: E402
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import APP, RedisError  # noqa: E402
STREAM = "rooms"
BIG_ROOM = "big"
SENDER = "sender"
TEXT = "a message of ordinary length for a chat notification"


def big_token(i):
    return "%064x" % (0xA0000000 + i)


def dm_token(i):
    return "%064x" % (0xB0000000 + i)


def dm_room(i):
    return "dm-%d" % i


def dm_recipient(i):
    return "r-%d" % i


def dm_sender(i):
    return "s-%d" % i


def message(room, mid, sender, text=TEXT):
    return json.dumps({"type": "message", "room": room, "id": mid, "client_id": sender,
                       "sender_name": "Sender", "text": text}, separators=(",", ":"))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[k]


# ---- redis ---------------------------------------------------------------------------

def resp(*args):
    """One command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def xadd(event_json):
    return resp("XADD", STREAM, "*", "event", event_json)


def parse_reply(buf, pos):
    """(reply, new position) of the reply at buf[pos:], or (None, pos) if incomplete.

    Errors come back as RedisError instances (not raised), bulk strings as bytes."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None, pos
    kind, line = buf[pos:pos + 1], buf[pos + 1:end]
    pos = end + 2
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return RedisError(line.decode()), pos
    if kind == b":":
        return int(line), pos
    if kind == b"$":
        n = int(line)
        if n < 0:
            return b"", pos
        if len(buf) < pos + n + 2:
            return None, pos - len(line) - 3
        return buf[pos:pos + n], pos + n + 2
    if kind == b"*":
        start = pos - len(line) - 3
        n = int(line)
        items = []
        for _ in range(max(n, 0)):
            item, pos = parse_reply(buf, pos)
            if item is None:
                return None, start
            items.append(item)
        return items, pos
    raise RuntimeError("bad RESP from redis: %r" % buf[pos - 3:pos + 40])


class RespConn:
    """A Redis connection that sends pre-encoded commands and parses replies."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self):
        self.sock.close()

    def read_reply(self):
        while True:
            reply, pos = parse_reply(self.buf, self.pos)
            if reply is not None:
                self.pos = pos
                if self.pos > 1 << 20:
                    self.buf, self.pos = self.buf[self.pos:], 0
                return reply
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RedisError("redis closed the connection")
            self.buf += chunk

    def command(self, *args):
        self.sock.sendall(resp(*args))
        reply = self.read_reply()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def pipeline(self, commands):
        """Send all commands (bytes) while reading their replies: (seconds, errors)."""
        reader = ReplyReader(self, len(commands))
        start = time.monotonic()
        reader.start()
        self.sock.sendall(b"".join(commands))
        reader.join()
        if reader.failure is not None:
            raise reader.failure
        return time.monotonic() - start, reader.errors


class ReplyReader(threading.Thread):
    """Reads (and checks) n replies on a connection while another thread writes."""

    def __init__(self, conn, n):
        super().__init__(daemon=True)
        self.conn = conn
        self.n = n
        self.count = 0
        self.errors = []
        self.failure = None
        self.done_at = None

    def run(self):
        try:
            for _ in range(self.n):
                reply = self.conn.read_reply()
                if isinstance(reply, RedisError):
                    self.errors.append(str(reply))
                self.count += 1
            self.done_at = time.monotonic()
        except Exception as e:     # noqa: BLE001 (reported by the writer)
            self.failure = e


# ---- the mock's control API, on one keep-alive connection --------------------------

class MockControl:
    def __init__(self, mock):
        self.port = mock.control_port
        self.conn = None

    def call(self, method, path):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request(method, path)
                r = self.conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise SystemExit("mock %s %s: %d %r" % (method, path, r.status, body))
                return json.loads(body)
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise

    def counts(self):
        """(requests, 200 answers) so far."""
        s = self.call("GET", "/stats")
        return s.get("requests", 0), s.get("responses", {}).get("200", 0)

    def wait_for(self, before, n, start, timeout=300.0, interval=0.02):
        """Wait until n more requests were answered; monotonic time it was seen."""
        while True:
            requests, ok = self.counts()
            if requests - before[0] >= n:
                seen = time.monotonic()
                if ok - before[1] != requests - before[0]:
                    raise SystemExit("the mock answered %d of %d requests with an error"
                                     % (requests - before[0] - (ok - before[1]), n))
                return seen
            if time.monotonic() - start > timeout:
                raise SystemExit("timed out: %d of %d delivered" % (requests - before[0], n))
            time.sleep(interval)

    def arrivals(self):
        return self.call("GET", "/arrivals")["arrivals"]

    def clear_arrivals(self):
        self.call("DELETE", "/arrivals")


# ---- CPU use, from /proc -------------------------------------------------------------

def _cpu_ns(pid, tid):
    """Nanoseconds a thread has run (/proc/PID/task/TID/schedstat), or None if gone."""
    try:
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _thread_name(pid, tid):
    """A thread's name (pushrelayd names its store threads), else its id."""
    try:
        with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
            name = f.read().strip()
    except OSError:
        name = ""
    return name if name and name != "pushrelayd" else "thread %s" % tid


class CpuSampler:
    """CPU time of processes (and pushrelayd's threads) between two snapshots."""

    def __init__(self, procs, threads_of=None):
        self.procs = procs              # name -> pid
        self.threads_of = threads_of    # name of the process whose threads are shown

    def snapshot(self):
        snap = {"t": time.monotonic(), "procs": {}, "threads": {}}
        for name, pid in self.procs.items():
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except OSError:
                continue
            total = 0
            for tid in tids:
                ns = _cpu_ns(pid, tid)
                if ns is None:
                    continue
                total += ns
                if name == self.threads_of:
                    label = "main loop" if int(tid) == pid else _thread_name(pid, tid)
                    snap["threads"][label] = ns
            snap["procs"][name] = total
        snap["all"] = self.everyone()
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        snap["idle"], snap["total"] = cpu[3] + cpu[4], sum(cpu[:8])
        return snap

    @staticmethod
    def everyone():
        """pid -> (comm, ns) of every process, to see who else uses the machine."""
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    data = f.read()
                with open("/proc/%s/schedstat" % pid) as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            comm = data[data.index("(") + 1:data.rindex(")")]
            # The whole process: its threads' time (the leader's file counts only its own).
            if int(data[data.rindex(")") + 2:].split()[17]) > 1:
                ns = sum(_cpu_ns(int(pid), t) or 0 for t in os.listdir("/proc/%s/task" % pid))
            out[int(pid)] = (comm, ns)
        return out

    def usage(self, a, b):
        """{"procs": {name: % of one core}, "threads": {...}, "machine": % of all cores}."""
        wall = max(b["t"] - a["t"], 1e-6)
        out = {"procs": {}, "threads": {}}
        for kind in ("procs", "threads"):
            for name, ns in b[kind].items():
                if name in a[kind]:
                    out[kind][name] = 100.0 * (ns - a[kind][name]) / 1e9 / wall
        total = b["total"] - a["total"]
        out["machine"] = 100.0 * (1 - (b["idle"] - a["idle"]) / total) if total else 0.0
        mine = set(self.procs.values())
        # What the machine did beyond these processes (others' builds and tests), in % of
        # one core; processes that came and went in between are only in this figure.
        out["unaccounted"] = max(0.0, out["machine"] * os.cpu_count() -
                                 sum(out["procs"].values()))
        others = []
        for pid, (comm, ns) in b["all"].items():
            if pid in mine:
                continue
            pct = 100.0 * (ns - a["all"].get(pid, (comm, 0))[1]) / 1e9 / wall
            if pct >= 1:
                others.append((pct, "%s[%d]" % (comm, pid)))
        out["others"] = sorted(others, reverse=True)
        return out

    @staticmethod
    def describe(u):
        parts = []
        for name, pct in u["procs"].items():
            text = "%s %.0f%%" % (name, pct)
            if name == "pushrelayd" and u["threads"]:
                text += " (%s)" % ", ".join("%s %.0f%%" % kv for kv in
                                            sorted(u["threads"].items(),
                                                   key=lambda kv: -kv[1]) if kv[1] >= 0.5)
            parts.append(text)
        text = "cpu (%% of one core): %s; machine %.0f%% of %d cores" % (
            ", ".join(parts), u["machine"], os.cpu_count())
        if u["unaccounted"] >= 10:
            text += "; OTHER LOAD %.0f%%" % u["unaccounted"]
            if u["others"]:
                text += " (" + ", ".join("%s %.0f%%" % (name, pct)
                                         for pct, name in u["others"][:3]) + ")"
        return text


def rss_mb(pid):
    """Resident memory of a process in MiB."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def machine_busy(seconds):
    """How busy the machine was over seconds, in % of one core."""
    def read():
        with open("/proc/stat") as f:
            cpu = [int(x) for x in f.readline().split()[1:]]
        return cpu[3] + cpu[4], sum(cpu[:8])
    idle0, total0 = read()
    time.sleep(seconds)
    idle1, total1 = read()
    total = total1 - total0
    return 100.0 * os.cpu_count() * (1 - (idle1 - idle0) / total) if total else 0.0


def wait_quiet(limit, max_wait):
    """Wait (up to max_wait s) until the machine runs under limit % of one core."""
    start = time.monotonic()
    while True:
        busy = machine_busy(0.5)
        if busy < limit:
            return
        if time.monotonic() - start > max_wait:
            print("  (the machine stayed busy: %.0f%% of one core before this run)" % busy)
            return


# ---- registration --------------------------------------------------------------------

def register(daemon, jobs, connections):
    """PUT each (path, body) over keep-alive connections, several at once."""
    failures = []

    def worker(part):
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
        auth = {"Authorization": "Bearer " + daemon.key}
        with_body = dict(auth, **{"Content-Type": "application/json"})
        for path, body in part:
            conn.request("PUT", path, body=body, headers=with_body if body else auth)
            r = conn.getresponse()
            r.read()
            if r.status not in (200, 201):
                failures.append("%s: %d" % (path, r.status))
                return
        conn.close()

    threads = [threading.Thread(target=worker, args=(jobs[i::connections],))
               for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit("registration failed: " + failures[0])


def device_job(device_id, client_id, token):
    body = json.dumps({"client_id": client_id, "platform": "apns", "app_id": APP,
                       "token": token})
    return ("/v1/devices/%s" % device_id, body)


def member_job(room, client):
    return ("/v1/rooms/%s/members/%s" % (room, client), None)


# ---- (a) throughput ------------------------------------------------------------------

class Bench:
    def __init__(self, args, daemon, mock, redis, tmp):
        self.args = args
        self.daemon = daemon
        self.mock = mock
        self.ctl = MockControl(mock)
        self.redis = redis
        self.rc = RespConn(redis.port)
        self.tmp = tmp
        self.nonce = "%x" % int(time.time())
        self.seq = 0
        self.sampler = CpuSampler({"pushrelayd": daemon.proc.pid,
                                   "mock_apns": mock.proc.pid,
                                   "redis-server": redis.proc.pid,
                                   "bench (python)": os.getpid()},
                                  threads_of="pushrelayd")
        self.events_conns = {}

    def new_id(self, prefix):
        self.seq += 1
        return "%s-%s-%d" % (prefix, self.nonce, self.seq)

    def post_events(self, events, slot=0):
        """POST /v1/events on keep-alive connection number slot; the number accepted."""
        body = ('{"events":[' + ",".join(events) + "]}").encode()
        for attempt in range(2):
            if self.events_conns.get(slot) is None:
                self.events_conns[slot] = http.client.HTTPConnection(
                    "127.0.0.1", self.daemon.port, timeout=60)
            conn = self.events_conns[slot]
            try:
                conn.request("POST", "/v1/events", body=body, headers={
                    "Authorization": "Bearer " + self.daemon.key,
                    "Content-Type": "application/json"})
                r = conn.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.events_conns[slot] = None
                if attempt == 1:
                    raise
        if r.status != 202:
            raise SystemExit("POST /v1/events: %d %r" % (r.status, raw[:300]))
        answer = json.loads(raw)
        if answer.get("skipped"):
            raise SystemExit("POST /v1/events skipped %r" % answer["skipped"][:3])
        return answer["accepted"]

    def fanout(self, via):
        """One message to the big room: notifications/s, ms to accept, ms to the first
        and the last request at the mock, cpu usage."""
        n = self.args.members
        event = message(BIG_ROOM, self.new_id("fan"), SENDER)
        wait_quiet(self.args.quiet, self.args.quiet_wait)
        self.ctl.clear_arrivals()
        before = self.ctl.counts()
        cpu0 = self.sampler.snapshot()
        wall = time.time()
        start = time.monotonic()
        if via == "xadd":
            self.rc.command("XADD", STREAM, "*", "event", event)
        else:
            self.post_events([event])
        accepted = time.monotonic() - start
        self.ctl.wait_for(before, n, start)
        cpu = self.sampler.usage(cpu0, self.sampler.snapshot())
        times = [t_us for t_us, _ in self.ctl.arrivals()]
        first = (min(times) / 1e6 - wall) * 1000
        last = (max(times) / 1e6 - wall) * 1000
        return n / (last / 1000), accepted * 1000, first, last, cpu

    def direct(self, via):
        """--messages messages over the 1:1 rooms as fast as they go in."""
        n, rooms = self.args.messages, self.args.rooms
        events = [message(dm_room(k % rooms), self.new_id("dm"), dm_sender(k % rooms))
                  for k in range(n)]
        wait_quiet(self.args.quiet, self.args.quiet_wait)
        self.ctl.clear_arrivals()
        before = self.ctl.counts()
        cpu0 = self.sampler.snapshot()
        wall = time.time()
        start = time.monotonic()
        if via == "xadd":
            took, errors = self.rc.pipeline([xadd(e) for e in events])
            if errors:
                raise SystemExit("XADD failed: %s" % errors[0])
        else:
            # Batches in order over --events-connections connections at once.
            batch, conns = self.args.events_batch, self.args.events_connections
            batches = [events[i:i + batch] for i in range(0, n, batch)]
            failures = []

            def poster(slot):
                try:
                    for b in batches[slot::conns]:
                        self.post_events(b, slot)
                except BaseException as e:      # reported below, in the main thread
                    failures.append(e)
            threads = [threading.Thread(target=poster, args=(i,)) for i in range(conns)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if failures:
                raise failures[0]
            took = time.monotonic() - start
        self.ctl.wait_for(before, n, start)
        cpu = self.sampler.usage(cpu0, self.sampler.snapshot())
        times = sorted(t_us / 1e6 for t_us, _ in self.ctl.arrivals())
        # From the first request at the mock: once Redis is no longer busy taking the
        # XADDs (or the first POSTs are committed), how fast the daemon delivers.
        flowing = (n - 1) / max(times[-1] - times[0], 1e-6)
        return n / (times[-1] - wall), flowing, n / took, cpu

    # ---- (b) latency ----

    def latency(self, rate, seconds, perf=False, dump=None):
        """Paced XADDs at rate for seconds; a dict of results."""
        tick = self.args.tick_ms / 1000.0
        per_tick = max(1, int(round(rate * tick)))
        ticks = max(1, int(round(seconds / tick)))
        n = per_tick * ticks
        rooms = self.args.rooms
        run = self.new_id("lat")
        conn = RespConn(self.redis.port)
        reader = ReplyReader(conn, n)
        wait_quiet(self.args.quiet, self.args.quiet_wait)
        self.ctl.clear_arrivals()
        before = self.ctl.counts()
        reader.start()
        send_us = []            # per tick: the time its batch was written
        late = 0
        perf_proc = None
        if perf:
            perf_proc = self.start_perf(seconds)
        base = time.time() + 0.05
        cpu0 = None
        for t in range(ticks):
            when = base + t * tick
            # Built ahead of time, stamped with the time it is due.
            due_us = int(when * 1e6)
            cmds = []
            for i in range(per_tick):
                k = t * per_tick + i
                room = k % rooms
                cmds.append(xadd(message(dm_room(room), "%s-%d-%d" % (run, t, i),
                                         dm_sender(room), "%s (due %d)" % (TEXT, due_us))))
            batch = b"".join(cmds)
            now = time.time()
            if when > now:
                time.sleep(when - now)
            elif now - when > tick:
                late += 1
            if cpu0 is None:
                cpu0 = self.sampler.snapshot()
            sent = time.time()
            conn.sock.sendall(batch)
            send_us.append(int(sent * 1e6))
        cpu1 = self.sampler.snapshot()
        last_send = time.time()
        reader.join(120)
        if reader.failure is not None or reader.errors:
            raise SystemExit("XADD failed: %s" % (reader.failure or reader.errors[0]))
        start = time.monotonic()
        try:
            self.ctl.wait_for(before, n, start, timeout=max(60.0, 4 * seconds))
        finally:
            conn.close()
        if perf_proc is not None:
            perf_proc.wait()
        arrivals = self.ctl.arrivals()
        prefix = run + "-"
        dumped = []
        lat = []
        last_arrival = 0
        for t_us, key in arrivals:
            if not key.startswith(prefix):
                continue
            sent_in = int(key[len(prefix):].split("-")[0])
            lat.append((t_us - send_us[sent_in]) / 1000.0)
            last_arrival = max(last_arrival, t_us)
            if dump is not None:
                dumped.append("%d %.3f\n" % (send_us[sent_in], lat[-1]))
        if dump is not None:
            with open(dump, "w") as f:
                f.writelines(sorted(dumped))
        lat.sort()
        first = send_us[0]
        duration = (send_us[-1] - first) / 1e6 + tick
        return {
            "rate": rate, "sent": n, "delivered": len(lat),
            "send_rate": n / duration,
            "delivered_rate": len(lat) / max((last_arrival - first) / 1e6, 1e-6),
            "late_ticks": late, "ticks": ticks,
            "p50": percentile(lat, 50), "p90": percentile(lat, 90),
            "p99": percentile(lat, 99), "max": lat[-1] if lat else float("nan"),
            "drain_ms": (last_arrival / 1e6 - last_send) * 1000,
            "cpu": self.sampler.usage(cpu0, cpu1),
            "perf": self.perf_report() if perf else None,
        }

    def start_perf(self, seconds):
        out = os.path.join(self.tmp, "perf.data")
        # No -g: pushrelayd is built without frame pointers, so its call chains are noise.
        return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
                                 "-o", out, "-p", str(self.daemon.proc.pid), "--",
                                 "sleep", str(seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def perf_report(self):
        """Top symbols of each pushrelayd thread (self time), as text lines."""
        out = os.path.join(self.tmp, "perf.data")

        def report(*extra):
            p = subprocess.run(["perf", "report", "-i", out, "--stdio", "--no-children",
                                "-g", "none"] + list(extra), capture_output=True, text=True)
            return [ln for ln in p.stdout.splitlines()
                    if ln.strip() and not ln.startswith("#")]

        lines = []
        pid = self.daemon.proc.pid
        for row in report("--sort", "pid"):     # perf's "pid" column is the thread
            share, tid = row.split()[0], row.split()[-1].split(":")[0]
            if not tid.isdigit():
                continue
            name = "main loop" if int(tid) == pid else "thread %s" % tid
            lines.append("%s: %s of pushrelayd's samples; top symbols (self):" % (name, share))
            for sym in report("--tid", tid, "--percentage", "relative", "--sort", "dso,sym",
                              "--percent-limit", "1.5")[:14]:
                lines.append("    " + sym)
        return lines


def run_h2load(mock, certs, n, connections, streams, tmp):
    """h2load with the daemon's request shape (a room message's payload); requests/s."""
    body = json.dumps({"aps": {"alert": {"title": "Sender", "body": "Sender: " + TEXT},
                               "badge": 1, "thread-id": BIG_ROOM},
                       "room": BIG_ROOM, "message_id": "fan-%x-1" % int(time.time()),
                       "sender": SENDER, "count": "1"}, separators=(",", ":"))
    return fixtures.apns_h2load_rate(mock, certs, big_token(0), body, n, connections,
                                     streams, tmp)


def sustained(r):
    """Did the daemon keep up: everything delivered at the offered rate, no queue?"""
    return (r["delivered"] == r["sent"] and r["send_rate"] >= 0.95 * r["rate"] and
            r["delivered_rate"] >= 0.95 * r["rate"] and r["p99"] < 250)


def print_latency(r):
    print("  offered %6d/s: sent %d at %.0f/s (%d of %d ticks late), delivered %d at "
          "%.0f/s, drained %.0f ms after the last XADD"
          % (r["rate"], r["sent"], r["send_rate"], r["late_ticks"], r["ticks"],
             r["delivered"], r["delivered_rate"], r["drain_ms"]))
    print("                  latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms%s"
          % (r["p50"], r["p90"], r["p99"], r["max"],
             "" if sustained(r) else "  (NOT sustained)"))
    print("                  " + CpuSampler.describe(r["cpu"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10000, help="fan-out room size")
    parser.add_argument("--rooms", type=int, default=2000, help="1:1 rooms")
    parser.add_argument("--messages", type=int, default=20000,
                        help="messages over the 1:1 rooms in the throughput run")
    parser.add_argument("--rate", type=int, default=20000,
                        help="messages/s of the latency run")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="length of the latency run")
    parser.add_argument("--tick-ms", type=float, default=1.0,
                        help="the latency run writes one batch of XADDs every this many ms")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=2,
                        help="the daemon's APNs connections, and h2load's")
    parser.add_argument("--streams", type=int, default=1000,
                        help="the mock's SETTINGS_MAX_CONCURRENT_STREAMS")
    parser.add_argument("--stream-batch", type=int, default=100,
                        help="[streams] batch (entries per XREADGROUP)")
    parser.add_argument("--events-batch", type=int, default=1000,
                        help="events per POST /v1/events ([events] max_batch)")
    parser.add_argument("--register-connections", type=int, default=4)
    parser.add_argument("--events-connections", type=int, default=2,
                        help="POST /v1/events connections of the 1:1 run, posting at once")
    parser.add_argument("--quiet", type=float, default=15,
                        help="before each run, wait for the machine to be under this %% "
                        "of one core (others' builds skew the figures)")
    parser.add_argument("--quiet-wait", type=float, default=60,
                        help="seconds to wait for that, at most")
    parser.add_argument("--curve", default="",
                        help="more latency runs at these rates (comma-separated), after "
                        "--rate")
    parser.add_argument("--dump-latency", metavar="FILE",
                        help="write 'send time (us) latency (ms)' per message of the --rate "
                        "run")
    parser.add_argument("--perf", action="store_true",
                        help="one more latency run under perf record; top symbols")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--tmpdir", default=None,
                        help="where the temp dir (the daemon's database) goes; default "
                        "$TMPDIR or /tmp (e.g. /dev/shm: no disk, no fsync cost)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    for tool in ("h2load", "redis-server") + (("perf",) if args.perf else ()):
        if shutil.which(tool) is None:
            raise SystemExit("%s not found" % tool)

    tmp = tempfile.mkdtemp(prefix="pushrelay-rooms-bench-", dir=args.tmpdir)
    certs = mockctl.Certs.generate(os.path.join(tmp, "certs"))
    mock = fixtures.apns_mock(certs, "--max-streams", str(args.streams), "--record-times",
                              record=False)
    redis = fixtures.RedisServer(directory=os.path.join(tmp, "redis")).start()
    daemon = harness.Daemon(config={
        "store": {"synchronous": "normal"},
        "delivery": {"queue_size": "1000000"},
        "redis": {"address": "127.0.0.1:%d" % redis.port},
        "streams": {"enabled": "yes", "keys": STREAM, "group": "pushrelay",
                    "consumer": "bench", "batch": str(args.stream_batch)},
        "events": {"enabled": "yes", "max_batch": str(args.events_batch)},
        "rooms": {"coalesce_window": "0"},
        **fixtures.apns_section(certs, mock.url(""), connections=str(args.connections)),
    }, tmp=os.path.join(tmp, "daemon"))
    try:
        daemon.start()
        print("rooms_bench: %d cores, pushrelayd %s, redis-server on 127.0.0.1:%d, "
              "mock_apns (%d streams), %d APNs connections, [streams] batch %d, "
              "database in %s" % (os.cpu_count(), harness.daemon_path(), redis.port,
                                  args.streams, args.connections, args.stream_batch, tmp))
        t = time.monotonic()
        jobs = []
        for i in range(args.members):
            jobs.append(device_job("big-%d" % i, "m-%d" % i, big_token(i)))
            jobs.append(member_job(BIG_ROOM, "m-%d" % i))
        for i in range(args.rooms):
            jobs.append(device_job("dm-%d" % i, dm_recipient(i), dm_token(i)))
            jobs.append(member_job(dm_room(i), dm_recipient(i)))
            jobs.append(member_job(dm_room(i), dm_sender(i)))
        register(daemon, jobs, args.register_connections)
        took = time.monotonic() - t
        print("registered %d devices and %d memberships in %.1f s (%.0f requests/s, %d "
              "keep-alive connections)" % (args.members + args.rooms,
                                           args.members + 2 * args.rooms, took,
                                           len(jobs) / took, args.register_connections))
        bench = Bench(args, daemon, mock, redis, tmp)
        db = daemon.db_path

        def memory(when):
            size = sum(os.path.getsize(db + ext) for ext in ("", "-wal")
                       if os.path.exists(db + ext))
            print("pushrelayd RSS %.0f MiB, database + WAL %.0f MiB (%s)"
                  % (rss_mb(daemon.proc.pid), size / 1048576.0, when))
        memory("after registration")
        # Warm-up: opens the APNs connections, mints the provider token, implicit joins.
        bench.fanout("xadd")
        bench.fanout("events")
        bench.direct("xadd")

        if not args.skip_throughput:
            print()
            print("(a) throughput, coalesce_window 0, nobody present")
            fan = {"xadd": [], "events": []}
            dm = {"xadd": [], "events": []}
            flow = {"xadd": [], "events": []}
            h2 = []
            for run in range(args.runs):
                for via in ("xadd", "events"):
                    rate, accepted, first, last, cpu = bench.fanout(via)
                    fan[via].append(rate)
                    print("  run %d fan-out via %-6s: %8.0f notifications/s (%s answered "
                          "after %.1f ms; requests reached the mock from %.1f to %.1f ms)"
                          % (run + 1, via, rate, "XADD" if via == "xadd" else "POST",
                             accepted, first, last))
                    print("        " + CpuSampler.describe(cpu))
                for via in ("xadd", "events"):
                    rate, flowing, in_rate, cpu = bench.direct(via)
                    dm[via].append(rate)
                    flow[via].append(flowing)
                    print("  run %d 1:1 rooms via %-6s: %8.0f notifications/s (written at "
                          "%.0f messages/s; %.0f/s from the first request at the mock)"
                          % (run + 1, via, rate, in_rate, flowing))
                    print("        " + CpuSampler.describe(cpu))
                h2.append(run_h2load(mock, certs, args.members, args.connections,
                                     args.streams, tmp))
                print("  run %d h2load: %.0f requests/s" % (run + 1, h2[-1]))
            med = statistics.median
            print()
            print("median over %d runs:" % args.runs)
            print("  fan-out, 1 message to %d away members:" % args.members)
            print("    XADD              %9.0f notifications/s (XADD to the last request at "
                  "the mock)" % med(fan["xadd"]))
            print("    POST /v1/events   %9.0f notifications/s (POST to the last request at "
                  "the mock)" % med(fan["events"]))
            print("  1:1 rooms, %d messages over %d rooms:" % (args.messages, args.rooms))
            print("    XADD, pipelined   %9.0f notifications/s (first XADD to the last "
                  "request at the mock)" % med(dm["xadd"]))
            print("                      %9.0f notifications/s (first to last request at "
                  "the mock)" % med(flow["xadd"]))
            print("    POST /v1/events   %9.0f notifications/s (%d events per POST, %d "
                  "connections)" % (med(dm["events"]), args.events_batch,
                                    args.events_connections))
            print("                      %9.0f notifications/s (first to last request at "
                  "the mock)" % med(flow["events"]))
            print("  h2load              %9.0f requests/s (same mock, %d connections, same "
                  "payload shape)" % (med(h2), args.connections))

            memory("after (a): %d notifications so far" % bench.ctl.counts()[0])

        if not args.skip_latency:
            print()
            print("(b) latency, XADD -> request at the mock, 1:1 rooms, %g ms ticks, %.0f s "
                  "(sustained: all delivered, sent and delivered within 5%% of the rate, "
                  "p99 < 250 ms)" % (args.tick_ms, args.seconds))
            results = []
            r = bench.latency(args.rate, args.seconds, dump=args.dump_latency)
            results.append(r)
            print_latency(r)
            for rate in [int(x) for x in args.curve.split(",") if x.strip()]:
                results.append(bench.latency(rate, args.seconds))
                print_latency(results[-1])
            r = results[0]
            if not sustained(r):
                # Bisect for the highest sustained rate, from the achieved one down.
                hi = args.rate
                lo = 0
                probe = int(min(r["delivered_rate"], r["send_rate"]) * 0.9) // 500 * 500
                for _ in range(5):
                    if probe <= lo or probe >= hi or probe < 500:
                        break
                    r = bench.latency(probe, args.seconds)
                    results.append(r)
                    print_latency(r)
                    if sustained(r):
                        lo = probe
                    else:
                        hi = probe
                    probe = (lo + hi) // 2 // 500 * 500
                ok = [x for x in results if sustained(x)]
                if ok:
                    best = max(ok, key=lambda x: x["rate"])
                    print("  highest sustained rate: %d messages/s: p50 %.2f ms, p90 %.2f "
                          "ms, p99 %.2f ms, max %.2f ms" % (best["rate"], best["p50"],
                                                            best["p90"], best["p99"],
                                                            best["max"]))
                else:
                    print("  no rate tried was sustained")
            memory("after (b): %d notifications so far" % bench.ctl.counts()[0])
            if args.perf:
                print()
                print("perf record -e cpu-clock -F 999 -p <pushrelayd> during a %d/s latency "
                      "run (perf costs CPU: this run's latency is not the figure):" % args.rate)
                r = bench.latency(args.rate, args.seconds, perf=True)
                print_latency(r)
                for line in r["perf"]:
                    print("    " + line)
    finally:
        daemon.cleanup()
        mock.stop()
        redis.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
