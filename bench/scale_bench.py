#!/usr/bin/env python3
"""Scale-out benchmark: 1, 2 and 3 instances on one PostgreSQL and one Redis.

One machine cannot show real scaling (the instances share its cores), so this prints
what a deployment model needs instead (docs/scaling.md):

- the cost of one message and one registration in round trips: to Redis, from the
  instances' pushrelay_state_round_trips_total; to PostgreSQL, its transactions
  (pg_stat_database.xact_commit) per registration;
- the throughput of 1, 2 and 3 instances sharing the machine, with the registry on
  PostgreSQL and the room state on Redis, each reading one stream in one group:
  messages/s (--messages XADDed to the stream at once over --rooms 1:1 rooms, from the
  first request at the mock APNs to the last) and registrations/s (--seconds of new
  devices over --connections keep-alive connections spread over the instances, from
  wrk with bench/register.lua, or Python threads without wrk);
- the embedded default (SQLite, room state in memory), one instance, the same runs,
  and the shared single instance's figures as a ratio of it (issue 11's goal: >= 0.5).

Run from a configured build tree (after `make src/pushrelayd tests/mocks/mock_apns`):
    python3 bench/scale_bench.py [--messages 20000] [--rooms 2000] [--seconds 5]
Needs redis-server, PostgreSQL (Debian's postgresql: initdb and postgres run as the
postgres user when root) and, for the registrations, preferably wrk.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import rooms_bench  # noqa: E402  (sets up the environment and the harness path)
from rooms_bench import (MockControl, RespConn, device_job, dm_recipient, dm_room,  # noqa: E402
                         dm_sender, dm_token, harness, member_job, message, mockctl,
                         register, resp)
import fixtures  # noqa: E402

STATE_TRIPS = "pushrelay_state_round_trips_total"


def metric_sum(daemon, name):
    """The sum of every sample of a metric family on the daemon's /metrics."""
    status, _, _, raw = daemon.request("GET", "/metrics", key=None)
    if status != 200:
        raise SystemExit("GET /metrics: %d" % status)
    total = 0.0
    for line in raw.decode().splitlines():
        m = re.match(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), line)
        if m:
            total += float(m.group(2))
    return total


class Setup:
    """The daemons of one configuration: embedded (one, SQLite, memory state) or
    shared (n, one PostgreSQL database, one Redis prefix, one stream)."""

    def __init__(self, args, tmp, certs, mock, redis, pg, kind, n):
        self.args, self.kind, self.n = args, kind, n
        self.pg, self.db = pg, None
        label = "%s-%d" % (kind, n)
        self.stream = "scale-" + label
        config = {
            "store": {"synchronous": "full"},
            "delivery": {"queue_size": "1000000"},
            "redis": {"address": "127.0.0.1:%d" % redis.port},
            "streams": {"enabled": "yes", "keys": self.stream, "group": "pushrelay",
                        "batch": "100"},
            "rooms": {"coalesce_window": "0"},
            **fixtures.apns_section(certs, mock.url(""), connections="2"),
        }
        if kind == "shared":
            self.db = pg.create_database()
            config["store"].update({"backend": "postgresql",
                                    "postgresql": pg.conninfo(self.db)})
            config["state"] = {"backend": "redis", "prefix": "scale-%s:" % label}
        self.daemons = []
        for i in range(n):
            c = dict(config)
            c["streams"] = dict(config["streams"], consumer="%s-%d" % (label, i))
            self.daemons.append(harness.Daemon(config=c, tmp=os.path.join(
                tmp, "%s-%d" % (label, i))))

    def start(self):
        for d in self.daemons:
            d.start()

    def stop(self):
        for d in self.daemons:
            d.cleanup()

    def xact_commits(self):
        if self.db is None:
            return 0
        rows = self.pg.query(self.db, "SELECT xact_commit AS n FROM pg_stat_database "
                             "WHERE datname = current_database()")
        return rows[0]["n"]

    def state_trips(self):
        return sum(metric_sum(d, STATE_TRIPS) for d in self.daemons) \
            if self.kind == "shared" else 0


def prepare_rooms(setup, rooms):
    """The 1:1 rooms' devices and members, in every registry (one if shared)."""
    jobs = []
    for i in range(rooms):
        jobs.append(device_job("dm-%d" % i, dm_recipient(i), dm_token(i)))
        jobs.append(member_job(dm_room(i), dm_recipient(i)))
        jobs.append(member_job(dm_room(i), dm_sender(i)))
    for d in setup.daemons[:1] if setup.kind == "shared" else setup.daemons:
        register(d, jobs, 4)


def run_messages(setup, ctl, redis_port, n, rooms, tag):
    """XADD n messages at once; messages/s from the first request at the mock to the
    last, and the Redis state's round trips per message. tag makes the ids new."""
    rc = RespConn(redis_port)
    events = [message(dm_room(k % rooms), "%s-%d-%s-%d" % (setup.kind, setup.n, tag, k),
                      dm_sender(k % rooms)) for k in range(n)]
    trips0 = setup.state_trips()
    ctl.clear_arrivals()
    before = ctl.counts()
    start = time.monotonic()
    # The stream of this setup (rooms_bench.xadd writes to its own STREAM key).
    took, errors = rc.pipeline([resp("XADD", setup.stream, "*", "event", e)
                                for e in events])
    if errors:
        raise SystemExit("XADD failed: %s" % errors[0])
    ctl.wait_for(before, n, start)
    times = sorted(t_us / 1e6 for t_us, _ in ctl.arrivals())
    rc.close()
    rate = (n - 1) / max(times[-1] - times[0], 1e-6)
    # Written-behind marks reach Redis within the flush period: wait for them.
    time.sleep(0.5)
    return rate, (setup.state_trips() - trips0) / n


def run_registrations(setup, args, prefix):
    """New devices for --seconds over --connections connections spread over the
    instances; registrations/s, and PostgreSQL transactions per registration."""
    commits0 = setup.xact_commits()
    per = max(1, args.connections // setup.n)
    created = 0
    if shutil.which("wrk") is not None:
        procs = []
        for i, d in enumerate(setup.daemons):
            env = dict(os.environ, PUSHRELAY_BENCH_KEY=d.key,
                       PUSHRELAY_BENCH_PREFIX="%s-%d" % (prefix, i),
                       PUSHRELAY_BENCH_APP=fixtures.APP, PUSHRELAY_BENCH_SALT=str(i + 1))
            procs.append(subprocess.Popen(
                ["wrk", "-t1", "-c%d" % per, "-d%ds" % args.seconds, "-s",
                 os.path.join(HERE, "register.lua"),
                 "http://127.0.0.1:%d/v1/devices" % d.port],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env))
        for p in procs:
            out = p.communicate(timeout=args.seconds + 60)[0].decode()
            m = re.search(r"^wrk: created (\d+) other (\d+)", out, re.M)
            if m is None:
                raise SystemExit("wrk: %s" % out)
            if int(m.group(2)):
                raise SystemExit("%s registrations failed" % m.group(2))
            created += int(m.group(1))
        took = float(args.seconds)
    else:
        counts = [0] * (per * setup.n)
        stop = time.monotonic() + args.seconds

        def worker(slot, d):
            import http.client
            import json
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
            headers = {"Authorization": "Bearer " + d.key,
                       "Content-Type": "application/json"}
            k = 0
            while time.monotonic() < stop:
                body = json.dumps({"client_id": "c-%s-%d" % (prefix, slot),
                                   "platform": "apns", "app_id": fixtures.APP,
                                   "token": "%032x%032x" % (slot + 1, k)})
                conn.request("PUT", "/v1/devices/%s-%d-%d" % (prefix, slot, k), body=body,
                             headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status != 201:
                    raise SystemExit("registration failed: %d" % r.status)
                counts[slot] += 1
                k += 1
        threads = [threading.Thread(target=worker, args=(i, setup.daemons[i % setup.n]))
                   for i in range(len(counts))]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - start
        created = sum(counts)
    commits = setup.xact_commits() - commits0
    return created / took, (commits / created if created and setup.db else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rooms", type=int, default=2000, help="1:1 rooms")
    parser.add_argument("--seconds", type=int, default=5, help="of registrations")
    parser.add_argument("--connections", type=int, default=16,
                        help="registration connections, spread over the instances")
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    for tool in ("redis-server",):
        if shutil.which(tool) is None:
            raise SystemExit("%s not found" % tool)

    tmp = tempfile.mkdtemp(prefix="pushrelay-scale-bench-")
    certs = mockctl.Certs.generate(os.path.join(tmp, "certs"))
    mock = fixtures.apns_mock(certs, "--record-times", record=False)
    ctl = MockControl(mock)
    redis = fixtures.RedisServer(directory=os.path.join(tmp, "redis")).start()
    pg = harness.PostgresServer().start()
    results = []
    try:
        print("scale_bench: %d cores, %d messages over %d 1:1 rooms, registrations for "
              "%d s over %d connections; PostgreSQL %s, redis-server on 127.0.0.1:%d"
              % (os.cpu_count(), args.messages, args.rooms, args.seconds,
                 args.connections, pg.bindir, redis.port))
        plan = [("embedded", 1)] + [("shared", int(n)) for n in args.instances.split(",")]
        for kind, n in plan:
            setup = Setup(args, tmp, certs, mock, redis, pg, kind, n)
            setup.start()
            try:
                prepare_rooms(setup, args.rooms)
                # A warm-up: connections, provider token, route cache.
                run_messages(setup, ctl, redis.port, args.rooms, args.rooms, "warm")
                msgs, trips = run_messages(setup, ctl, redis.port, args.messages,
                                           args.rooms, "run")
                regs, commits = run_registrations(setup, args, "%s%d" % (kind, n))
            finally:
                setup.stop()
            results.append((kind, n, msgs, trips, regs, commits))
            print("  %-8s x%d: %8.0f messages/s (%.2f Redis round trips each), "
                  "%7.0f registrations/s (%.2f PostgreSQL transactions each)"
                  % (kind, n, msgs, trips, regs, commits))
        embedded = results[0]
        shared1 = [r for r in results if r[0] == "shared" and r[1] == 1]
        if shared1:
            s = shared1[0]
            print("  one instance with shared state, as a ratio of the embedded default: "
                  "messages %.2f, registrations %.2f (goal >= 0.5)"
                  % (s[2] / embedded[2], s[4] / embedded[4]))
    finally:
        pg.cleanup()
        redis.stop()
        mock.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
