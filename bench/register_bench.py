#!/usr/bin/env python3
"""Registration benchmark: durable PUT /v1/devices/{id} per second with synchronous=full.

A benchmark, not a test: it prints figures. One pushrelayd with [store] synchronous =
full (every acknowledged registration is fsynced: the store writer commits the
registrations that queue up during a commit together, one fsync for all).

(1) Throughput. --connections keep-alive HTTP/1.1 connections (16), one request at a
    time per connection, no pipelining, each PUTting new devices (a new id and token
    every time) for --seconds: from wrk (bench/register.lua; Debian's wrk) when it is
    installed, which leaves most of a 2-core machine to the daemon, else from
    --processes Python driver processes (asyncio, raw sockets; --python-driver). Prints durable registrations/s (201 answers), their latency,
    and checks that the database holds every acknowledged one.
    In the same directory (same disk), SQLite itself (Python's sqlite3: WAL,
    synchronous=FULL, the devices table of the daemon's schema) inserting one row per
    transaction, for --baseline-seconds; prints its inserts/s and the ratio.
    Is the driver the bottleneck? Before that, the same driver asks GET /healthz (no
    store) as fast as it goes: its ceiling. The CPU of every process is printed too
    (a driver process near 100% of a core is saturated).
(2) Latency while registering. The rooms latency case of bench/rooms_bench.py (room
    messages XADDed to a real redis-server at --rate per second over --rooms 1:1 rooms,
    delivered to the mock APNs; latency from the XADD to the request at the mock),
    first alone, then while --register-rate registrations/s run (paced, over the same
    16 connections). Prints p50/p90/p99/max of both, and the registrations' latency.

Run from a configured build tree (after `make src/pushrelayd tests/mocks/mock_apns`):
    python3 bench/register_bench.py [--seconds 10] [--processes 4] [--skip-rooms]
Environment: PUSHRELAYD, PUSHRELAY_TOP_SRCDIR, PUSHRELAY_TOP_BUILDDIR (defaults: this
source tree and the current directory as the build tree). The rooms case needs
redis-server. The database goes to --tmpdir (default $TMPDIR or /tmp): put it on the
disk you want to measure.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import rooms_bench  # noqa: E402  (sets up the environment and the harness path)
from rooms_bench import (CpuSampler, percentile, harness, mockctl)  # noqa: E402
import fixtures  # noqa: E402

TOPIC = fixtures.APP


# ---- the driver: keep-alive HTTP/1.1 connections in asyncio, in several processes ----

class Conn(asyncio.Protocol):
    """One keep-alive connection: a request, its answer, the next request."""

    def __init__(self, job, slot, stats, done):
        self.job = job
        self.slot = slot            # this connection's number in its process
        self.stats = stats
        self.done = done
        self.buf = b""
        self.seq = 0
        self.sent_at = 0.0
        self.transport = None
        loop = asyncio.get_event_loop()
        self.loop = loop
        # Paced: this connection's share of the rate, one request every interval.
        self.interval = (job["connections_here"] / job["rate_here"]
                         if job["rate_here"] else 0.0)

    def connection_made(self, transport):
        self.transport = transport
        delay = self.job["start_at"] - time.time()
        if self.interval:
            # Spread the connections' first requests over one interval.
            delay += self.interval * self.slot / self.job["connections_here"]
        self.first_due = time.monotonic() + max(0.0, delay)
        self.loop.call_later(max(0.0, delay), self.send)

    def request(self):
        job = self.job
        n = self.seq
        self.seq += 1
        if job["kind"] == "healthz":
            return job["healthz"]
        device_id = "%s-%d-%d-%d" % (job["prefix"], job["process"], self.slot, n)
        token = "%064x" % ((job["case"] << 60) | (job["process"] << 52) |
                           (self.slot << 44) | n)
        body = ('{"client_id":"%s-%d","platform":"apns","app_id":"%s","token":"%s"}'
                % (job["prefix"], job["process"], TOPIC, token)).encode()
        return (b"PUT /v1/devices/%s HTTP/1.1\r\nHost: bench\r\n%s"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (device_id.encode(), job["auth"], len(body), body))

    def send(self):
        if time.time() >= self.job["end_at"]:
            self.transport.close()
            return
        if self.interval:
            due = self.first_due + self.seq * self.interval
            now = time.monotonic()
            if due > now:
                self.loop.call_later(due - now, self.send_now)
                return
        self.send_now()

    def send_now(self):
        if time.time() >= self.job["end_at"]:
            self.transport.close()
            return
        self.sent_at = time.monotonic()
        self.transport.write(self.request())

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            at = head.lower().find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17:stop if stop >= 0 else len(head)])
            if len(self.buf) < end + 4 + length:
                return
            status = int(head[9:12])
            self.buf = self.buf[end + 4 + length:]
            s = self.stats
            if 200 <= status < 300:
                s["ok"] += 1
                s["latency"].append(time.monotonic() - self.sent_at)
            else:
                s["failed"] += 1
                if s["first_failure"] is None:
                    s["first_failure"] = status
            self.send()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(None)


async def drive_process(job):
    loop = asyncio.get_event_loop()
    stats = {"ok": 0, "failed": 0, "first_failure": None, "latency": []}
    waits = []
    for slot in range(job["connections_here"]):
        done = loop.create_future()
        await loop.create_connection(lambda s=slot, d=done: Conn(job, s, stats, d),
                                     "127.0.0.1", job["port"])
        waits.append(done)
    await asyncio.gather(*waits)
    return stats


def driver_main(job, out):
    stats = asyncio.run(drive_process(job))
    out.put(stats)


class Driver:
    """--connections connections over --processes processes, for one run."""

    def __init__(self, daemon, connections, processes):
        self.daemon = daemon
        self.connections = connections
        self.processes = max(1, min(processes, connections))
        self.case = 0

    def start(self, kind, seconds, rate=0, prefix="reg"):
        self.case += 1
        ctx = multiprocessing.get_context("fork")
        self.queue = ctx.Queue()
        self.procs = []
        start_at = time.time() + 0.5
        self.start_at, self.end_at = start_at, start_at + seconds
        auth = ("Authorization: Bearer %s\r\n" % self.daemon.key).encode()
        for p in range(self.processes):
            here = (self.connections // self.processes +
                    (1 if p < self.connections % self.processes else 0))
            job = {"kind": kind, "port": self.daemon.port, "auth": auth,
                   "healthz": b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n",
                   "prefix": "%s%d" % (prefix, self.case), "case": self.case, "process": p,
                   "connections_here": here,
                   "rate_here": rate * here / self.connections if rate else 0,
                   "start_at": start_at, "end_at": start_at + seconds}
            proc = ctx.Process(target=driver_main, args=(job, self.queue), daemon=True)
            proc.start()
            self.procs.append(proc)
        return self

    def pids(self):
        return {"driver %d" % (i + 1): p.pid for i, p in enumerate(self.procs)}

    def wait_start(self):
        time.sleep(max(0.0, self.start_at - time.time()))

    def finish(self):
        results = [self.queue.get(timeout=120) for _ in self.procs]
        for p in self.procs:
            p.join(30)
        lat = sorted(x for r in results for x in r["latency"])
        failures = [r["first_failure"] for r in results if r["first_failure"] is not None]
        return {"ok": sum(r["ok"] for r in results),
                "failed": sum(r["failed"] for r in results),
                "first_failure": failures[0] if failures else None,
                "seconds": self.end_at - self.start_at,
                "p50": percentile(lat, 50) * 1000, "p99": percentile(lat, 99) * 1000,
                "max": (lat[-1] * 1000) if lat else float("nan")}


def timed_run(driver, daemon, kind, seconds, rate=0):
    """Run the driver; (results, cpu usage during the run)."""
    driver.start(kind, seconds, rate)
    sampler = CpuSampler(dict({"pushrelayd": daemon.proc.pid}, **driver.pids()),
                         threads_of="pushrelayd")
    driver.wait_start()
    cpu0 = sampler.snapshot()
    time.sleep(seconds)
    cpu = sampler.usage(cpu0, sampler.snapshot())
    return driver.finish(), cpu


# ---- SQLite alone: one transaction per insert -----------------------------------------

DEVICES_SCHEMA = (
    "CREATE TABLE devices ("
    "  device_id TEXT PRIMARY KEY, client_id TEXT NOT NULL,"
    "  platform TEXT NOT NULL CHECK (platform IN ('apns', 'fcm')), token TEXT NOT NULL,"
    "  app_id TEXT NOT NULL,"
    "  environment TEXT NOT NULL CHECK (environment IN ('production', 'sandbox')),"
    "  locale TEXT, metadata TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  last_success_at INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
    "  last_error_at INTEGER NOT NULL DEFAULT 0, UNIQUE (platform, token));"
    "CREATE INDEX devices_client_id ON devices (client_id);")


def sqlite_one_per_transaction(directory, seconds):
    """Inserts/s of a device row per BEGIN IMMEDIATE ... COMMIT, WAL, synchronous=FULL."""
    path = os.path.join(directory, "baseline.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript(DEVICES_SCHEMA)
    insert = ("INSERT INTO devices (device_id, client_id, platform, token, app_id,"
              " environment, created_at, updated_at) VALUES (?, ?, 'apns', ?, ?,"
              " 'production', ?, ?)")
    n = 0
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        now = int(time.time() * 1000)
        db.execute("BEGIN IMMEDIATE")
        db.execute(insert, ("base-%d" % n, "client-%d" % (n % 1000), "%064x" % n, TOPIC,
                            now, now))
        db.execute("COMMIT")
        n += 1
    took = time.monotonic() - start
    db.close()
    return n / took, sqlite3.sqlite_version


# ---- the cases -------------------------------------------------------------------------

def wrk_run(args, daemon, seconds, script=None, path="/healthz", prefix="wrk"):
    """wrk (one thread: C, so the driver costs little of the machine) on
    --connections keep-alive connections; (results as Driver.finish(), cpu)."""
    env = dict(os.environ, PUSHRELAY_BENCH_KEY=daemon.key, PUSHRELAY_BENCH_PREFIX=prefix,
               PUSHRELAY_BENCH_APP=TOPIC)
    cmd = ["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % max(1, round(seconds)),
           "--latency"]
    if script is not None:
        cmd += ["-s", os.path.join(HERE, script)]
    cmd.append("http://127.0.0.1:%d%s" % (daemon.port, path))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    sampler = CpuSampler({"pushrelayd": daemon.proc.pid, "wrk": proc.pid},
                         threads_of="pushrelayd")
    time.sleep(0.3)
    cpu0 = sampler.snapshot()
    time.sleep(max(0.1, round(seconds) - 0.6))
    cpu = sampler.usage(cpu0, sampler.snapshot())
    out = proc.communicate(timeout=seconds + 60)[0].decode()
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)s", out, re.M)
    if m is None:
        raise SystemExit("wrk: %s" % out)
    total, took = int(m.group(1)), float(m.group(2))
    ok, failed = total, 0
    p50 = p99 = float("nan")
    m = re.search(r"^wrk: created (\d+) other (\d+) p50_us (\d+) p99_us (\d+)", out, re.M)
    if m is not None:
        ok, failed = int(m.group(1)), int(m.group(2))
        p50, p99 = int(m.group(3)) / 1000.0, int(m.group(4)) / 1000.0
    else:
        for q, name in ((r"^\s*50%\s+([\d.]+)(us|ms|s)", "p50"),
                        (r"^\s*99%\s+([\d.]+)(us|ms|s)", "p99")):
            mm = re.search(q, out, re.M)
            if mm is not None:
                v = float(mm.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[mm.group(2)]
                p50, p99 = (v, p99) if name == "p50" else (p50, v)
    return {"ok": ok, "failed": failed, "first_failure": None if not failed else "non-201",
            "seconds": took, "p50": p50, "p99": p99, "max": float("nan")}, cpu


def throughput(args, daemon, tmp):
    driver = Driver(daemon, args.connections, args.processes)
    use_wrk = not args.python_driver and shutil.which("wrk") is not None
    print()
    if use_wrk:
        print("(1) throughput: %d keep-alive connections from wrk (one thread, "
              "bench/register.lua)" % args.connections)
        ceiling, cpu = wrk_run(args, daemon, args.calibrate_seconds)
    else:
        print("(1) throughput: %d keep-alive connections over %d driver processes"
              % (args.connections, driver.processes))
        ceiling, cpu = timed_run(driver, daemon, "healthz", args.calibrate_seconds)
    print("  driver ceiling, GET /healthz (no store): %8.0f requests/s, p99 %.2f ms"
          % (ceiling["ok"] / ceiling["seconds"], ceiling["p99"]))
    print("    " + CpuSampler.describe(cpu))
    before = daemon.query("SELECT COUNT(*) AS n FROM devices")[0]["n"]
    if use_wrk:
        reg, cpu = wrk_run(args, daemon, args.seconds, "register.lua", "/v1/devices")
    else:
        reg, cpu = timed_run(driver, daemon, "register", args.seconds)
    rate = reg["ok"] / reg["seconds"]
    if reg["failed"]:
        print("  %d registrations failed (first: HTTP %s)" % (reg["failed"],
                                                            reg["first_failure"]))
    print("  PUT /v1/devices, synchronous=full:       %8.0f durable registrations/s "
          "(%d in %.0f s), latency p50 %.2f ms, p99 %.2f ms, max %.1f ms"
          % (rate, reg["ok"], reg["seconds"], reg["p50"], reg["p99"], reg["max"]))
    print("    " + CpuSampler.describe(cpu))
    stored = daemon.query("SELECT COUNT(*) AS n FROM devices")[0]["n"] - before
    if stored < reg["ok"]:
        raise SystemExit("the database holds %d new devices, %d were acknowledged"
                         % (stored, reg["ok"]))
    if rate > 0.8 * ceiling["ok"] / ceiling["seconds"]:
        print("  (within 20% of the driver's ceiling: the driver may be the bottleneck; "
              "try more --processes)")
    base, version = sqlite_one_per_transaction(os.path.dirname(daemon.db_path),
                                               args.baseline_seconds)
    print("  SQLite %s alone, one transaction per insert (WAL, synchronous=FULL, same "
          "directory): %8.0f inserts/s" % (version, base))
    print("  ratio: %.1fx" % (rate / base if base else float("nan")))


def rooms_latency(args, daemon, mock, redis, tmp):
    """The rooms latency case, alone and during paced registrations."""
    bench_args = argparse.Namespace(tick_ms=args.tick_ms, rooms=args.rooms, quiet=1e9,
                                    quiet_wait=0, members=1, messages=args.rooms)
    bench = rooms_bench.Bench(bench_args, daemon, mock, redis, tmp)
    jobs = []
    for i in range(args.rooms):
        jobs.append(rooms_bench.device_job("dm-%d" % i, rooms_bench.dm_recipient(i),
                                           rooms_bench.dm_token(i)))
        jobs.append(rooms_bench.member_job(rooms_bench.dm_room(i),
                                           rooms_bench.dm_recipient(i)))
        jobs.append(rooms_bench.member_job(rooms_bench.dm_room(i),
                                           rooms_bench.dm_sender(i)))
    rooms_bench.register(daemon, jobs, 4)
    # Warm-up: the APNs connections, the provider token, the senders' implicit joins.
    bench.direct("xadd")
    print()
    print("(2) latency, XADD -> request at the mock APNs, %d 1:1 rooms, %d messages/s, "
          "%g ms ticks, %.0f s" % (args.rooms, args.rate, args.tick_ms, args.rate_seconds))
    rooms_bench.wait_quiet(args.quiet, args.quiet_wait)
    alone = bench.latency(args.rate, args.rate_seconds)
    print("  alone:")
    rooms_bench.print_latency(alone)
    rooms_bench.wait_quiet(args.quiet, args.quiet_wait)
    driver = Driver(daemon, args.connections, args.processes)
    driver.start("register", args.rate_seconds + 2, rate=args.register_rate)
    driver.wait_start()
    time.sleep(0.5)
    during = bench.latency(args.rate, args.rate_seconds)
    reg = driver.finish()
    print("  with %d registrations/s (synchronous=full) at the same time:"
          % args.register_rate)
    rooms_bench.print_latency(during)
    print("                  registrations: %.0f/s, latency p50 %.2f ms, p99 %.2f ms, "
          "max %.1f ms%s" % (reg["ok"] / reg["seconds"], reg["p50"], reg["p99"],
                             reg["max"], "" if not reg["failed"] else
                             " (%d failed)" % reg["failed"]))
    print("  message p99: %.2f ms alone, %.2f ms while registering (target <= 5 ms)"
          % (alone["p99"], during["p99"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of the registration run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--processes", type=int, default=max(2, os.cpu_count() // 2),
                        help="driver processes (default: half the cores, at least 2)")
    parser.add_argument("--calibrate-seconds", type=float, default=3.0,
                        help="length of the GET /healthz run that measures the driver")
    parser.add_argument("--baseline-seconds", type=float, default=5.0,
                        help="length of the SQLite one-transaction-per-insert run")
    parser.add_argument("--rate", type=int, default=20000,
                        help="messages/s of the latency case")
    parser.add_argument("--register-rate", type=int, default=2000,
                        help="registrations/s during the latency case")
    parser.add_argument("--rate-seconds", type=float, default=5.0,
                        help="length of each latency run")
    parser.add_argument("--rooms", type=int, default=2000, help="1:1 rooms")
    parser.add_argument("--tick-ms", type=float, default=1.0)
    parser.add_argument("--quiet", type=float, default=15,
                        help="before each latency run, wait for the machine to be under "
                        "this %% of one core")
    parser.add_argument("--quiet-wait", type=float, default=30)
    parser.add_argument("--python-driver", action="store_true",
                        help="drive the throughput case from Python even when wrk is "
                        "installed (Debian: wrk)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rooms", action="store_true")
    parser.add_argument("--tmpdir", default=None,
                        help="where the temp dir (the databases) goes")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    if not args.skip_rooms and shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found (or --skip-rooms)")

    tmp = tempfile.mkdtemp(prefix="pushrelay-register-bench-", dir=args.tmpdir)
    mock = redis = None
    config = {"store": {"synchronous": "full"},
              "api": {"max_connections_per_peer": "1000"},
              "delivery": {"queue_size": "1000000"}}
    if not args.skip_rooms:
        certs = mockctl.Certs.generate(os.path.join(tmp, "certs"))
        mock = fixtures.apns_mock(certs, "--max-streams", "1000", "--record-times",
                                  record=False)
        redis = fixtures.RedisServer(directory=os.path.join(tmp, "redis")).start()
        config.update({
            "redis": {"address": "127.0.0.1:%d" % redis.port},
            "streams": {"enabled": "yes", "keys": rooms_bench.STREAM, "group": "pushrelay",
                        "consumer": "bench", "batch": "100"},
            "rooms": {"coalesce_window": "0"},
            **fixtures.apns_section(certs, mock.url(""), connections="2")})
    daemon = harness.Daemon(config=config, tmp=os.path.join(tmp, "daemon"))
    try:
        daemon.start()
        print("register_bench: %d cores, pushrelayd %s, [store] synchronous = full, "
              "database in %s" % (os.cpu_count(), harness.daemon_path(), daemon.db_path))
        if not args.skip_throughput:
            throughput(args, daemon, tmp)
        if not args.skip_rooms:
            rooms_latency(args, daemon, mock, redis, tmp)
        # The store writer logs what it did as it stops.
        if daemon.stop() == 0:
            found = daemon.find_log(lambda f: f.get("msg") == "store writer stopped")
            if found:
                line = found[-1]
                jobs, batches = int(line["jobs"]), int(line["batches"])
                print()
                print("store writer: %d jobs in %d group commits (%.1f a commit on "
                      "average, at most %s)" % (jobs, batches, jobs / max(batches, 1),
                                                line["largest_batch"]))
    finally:
        daemon.cleanup()
        if mock is not None:
            mock.stop()
        if redis is not None:
            redis.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
