#!/usr/bin/env python3
"""Fan-out benchmark: one POST /v1/push to a room of N members, delivered to a mock.

Registers N devices (one per member) through the API, joins them to one room, sends
one push to the room and measures how fast the mock APNs (or FCM, --platform fcm)
answers the N requests. In the same run, h2load sends N requests of the same shape
(same headers, same body size, a valid provider token) straight to the same mock,
with the same number of connections. Prints both rates and their ratio.

The round-trip case (--delay-ms): the mock holds every answer that long, as the real
providers' round trip does (APNs 50-300 ms, FCM about 80 ms), so a connection carries
at most streams / RTT notifications a second. Without --connections the daemon keeps
its default cap and opens what the load needs; the bench prints the connections it
opened, connections x streams / RTT (the physical limit of those connections), the
rate as a fraction of it, and h2load with the same connections and delay:
    python3 bench/push_bench.py --delay-ms 150 --streams 1000 --devices 150000
    python3 bench/push_bench.py --platform fcm --delay-ms 80 --streams 100 --devices 30000

Past 20000 devices they are written straight into the daemon's database (stopped
for it) rather than registered through the API, which would take minutes.

Run from a configured build tree (after `make`), e.g.:
    python3 bench/push_bench.py --devices 50000
Environment: PUSHRELAYD, PUSHRELAY_TOP_SRCDIR, PUSHRELAY_TOP_BUILDDIR (defaults: this
source tree and the current directory as the build tree).
"""

import argparse
import http.client
import threading
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

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
from fixtures import APP, PROJECT, EMAIL  # noqa: E402


def token_for(i):
    return "%064x" % (0xA0000000 + i)


def register(daemon, n, room, platform="apns"):
    """Register n devices and their memberships over keep-alive connections."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    headers = {"Authorization": "Bearer " + daemon.key, "Content-Type": "application/json"}
    for i in range(n):
        body = json.dumps({"client_id": "member-%d" % i, "platform": platform,
                           "app_id": APP if platform == "apns" else PROJECT,
                           "token": token_for(i)})
        conn.request("PUT", "/v1/devices/device-%d" % i, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status not in (200, 201):
            raise SystemExit("device registration failed: %d" % r.status)
        conn.request("PUT", "/v1/rooms/%s/members/member-%d" % (room, i),
                      headers={"Authorization": "Bearer " + daemon.key})
        r = conn.getresponse()
        r.read()
        if r.status not in (200, 201):
            raise SystemExit("membership failed: %d" % r.status)
    conn.close()


def register_directly(daemon, n, room, platform="apns"):
    """The same devices and memberships written straight into the stopped daemon's
    SQLite database, for fan-outs too large to register through the API quickly."""
    import sqlite3
    daemon.stop()
    db = sqlite3.connect(daemon.db_path)
    now = int(time.time() * 1000)
    app = APP if platform == "apns" else PROJECT
    with db:
        db.executemany(
            "INSERT INTO devices (device_id, client_id, platform, token, app_id,"
            " environment, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'production',"
            " ?, ?)",
            (("device-%d" % i, "member-%d" % i, platform, token_for(i), app, now, now)
             for i in range(n)))
        db.executemany(
            "INSERT INTO memberships (room_id, client_id, joined_at) VALUES (?, ?, ?)",
            ((room, "member-%d" % i, now) for i in range(n)))
    db.close()
    daemon.start()


def provider_connections(daemon, platform):
    """pushrelay_h2_connections{provider=...} from the daemon's /metrics."""
    status, _, _, raw = daemon.request("GET", "/metrics")
    for line in raw.decode().splitlines():
        if line.startswith("pushrelay_h2_connections{") and \
                'provider="%s"' % platform in line:
            return int(float(line.split()[-1]))
    raise SystemExit("no pushrelay_h2_connections for %s in /metrics" % platform)


def mock_requests(mock):
    return mock.stats().get("requests", 0)


class OneToOne:
    """1:1 room messages POSTed to /v1/events every interval while a push fans out:
    how long each takes to reach the mock (its --record-times arrivals), which is what
    the delivery layer's round robin keeps short."""

    def __init__(self, daemon, mock, interval_ms, platform):
        self.daemon, self.mock, self.interval = daemon, mock, interval_ms / 1000.0
        self.room, self.sender, self.recipient = "dm-room", "dm-sender", "dm-recipient"
        self.sent = {}
        self.stop = threading.Event()
        self.thread = None
        register_one(daemon, self.recipient, "dm-device", platform)
        for client in (self.sender, self.recipient):
            status, _, _, raw = daemon.request(
                "PUT", "/v1/rooms/%s/members/%s" % (self.room, client))
            if status not in (200, 201):
                raise SystemExit("1:1 membership failed: %d %r" % (status, raw))

    def start(self, run):
        self.stop.clear()
        self.thread = threading.Thread(target=self._post, args=(run,), daemon=True)
        self.thread.start()

    def _post(self, run):
        conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30)
        headers = {"Authorization": "Bearer " + self.daemon.key,
                   "Content-Type": "application/json"}
        k = 0
        while not self.stop.is_set():
            mid = "dm-%d-%d" % (run, k)
            body = json.dumps({"events": [{"type": "message", "room": self.room, "id": mid,
                                           "client_id": self.sender, "text": "hi"}]})
            posted = time.time()
            conn.request("POST", "/v1/events", body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 202:
                raise SystemExit("1:1 message refused: %d" % r.status)
            self.sent[mid] = (posted, time.time())
            k += 1
            self.stop.wait(self.interval)
        conn.close()

    def finish(self):
        """Stop; the latencies (ms) of the messages sent meanwhile, from the POST and
        from its 202 (the event outbox's commit on the store writer, which a push's
        ledger write also uses)."""
        self.stop.set()
        self.thread.join()
        time.sleep(1.0)
        arrived = {mid: t_us / 1e6 for t_us, mid in self.mock.control("GET", "/arrivals")
                   ["arrivals"] if mid.startswith("dm-")}
        missing = [mid for mid in self.sent if mid not in arrived]
        if missing:
            raise SystemExit("1:1 messages not delivered: %s" % missing[:5])
        latencies = sorted((arrived[mid] - t[0]) * 1000 for mid, t in self.sent.items())
        accepted = sorted((arrived[mid] - t[1]) * 1000 for mid, t in self.sent.items())
        self.sent = {}
        self.mock.control("DELETE", "/arrivals")
        return latencies, accepted


def register_one(daemon, client, device_id, platform):
    body = {"client_id": client, "platform": platform,
            "app_id": APP if platform == "apns" else PROJECT, "token": "%064x" % 0xD1}
    status, _, _, raw = daemon.request("PUT", "/v1/devices/" + device_id, body=body)
    if status not in (200, 201):
        raise SystemExit("1:1 device registration failed: %d %r" % (status, raw))


def percentile(values, q):
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_push(daemon, mock, n, room, body_text):
    """One push to the room: (seconds until the mock has answered n more requests,
    seconds until the 202, answers/s between the first quarter and the last: the
    steady rate, without the acceptance before and the tail after)."""
    before = mock_requests(mock)
    payload = {"recipients": {"room_id": room},
               "notification": {"title": "Bench room", "body": body_text,
                                "thread_id": room, "data": {"room": room}}}
    start = time.monotonic()
    status, _, answer, raw = daemon.request("POST", "/v1/push", body=payload, timeout=120)
    if status != 202:
        raise SystemExit("push failed: %d %r" % (status, raw))
    accepted = time.monotonic() - start
    quarter = three_quarters = None
    while True:
        done = mock_requests(mock) - before
        if done >= n // 4 and quarter is None:
            quarter = (time.monotonic(), done)
        if done >= 3 * n // 4 and three_quarters is None:
            three_quarters = (time.monotonic(), done)
        if done >= n:
            break
        if time.monotonic() - start > 300:
            raise SystemExit("timed out: %d of %d delivered" % (done, n))
        time.sleep(0.002)
    end = time.monotonic()
    steady = ((three_quarters[1] - quarter[1]) / (three_quarters[0] - quarter[0])
              if three_quarters[0] > quarter[0] else float("nan"))
    return end - start, accepted, steady


def run_h2load(mock, certs, n, connections, streams, body_len, tmp, platform):
    """h2load with the daemon's request shape; requests per second."""
    if platform == "apns":
        body = json.dumps({"aps": {"alert": {"title": "Bench room", "body": "x"}}})
        body = body.replace('"x"', '"' + "x" * max(1, body_len - len(body) + 1) + '"')
        return fixtures.apns_h2load_rate(mock, certs, token_for(0), body, n, connections,
                                         streams, tmp)
    # FCM: an access token from the mock's token endpoint (HTTP/2 only), as the daemon
    # gets one.
    token_uri = mock.url("/token")
    form = urllib.parse.urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": mockctl.fcm_assertion(certs.fcm_key, EMAIL, token_uri)})
    answer = subprocess.run(["curl", "-sS", "--http2", "--cacert", certs.ca, "--data", form,
                             token_uri], capture_output=True, text=True, check=True).stdout
    access = json.loads(answer)["access_token"]
    body = json.dumps({"message": {"token": token_for(0), "notification": {
        "title": "Bench room", "body": "x" * max(1, body_len - 80)}}})
    data = os.path.join(tmp, "fcm-body.json")
    with open(data, "w") as f:
        f.write(body)
    cmd = ["h2load", "-n", str(n), "-c", str(connections), "-m", str(streams), "-d", data,
           "-H", "authorization: Bearer " + access, "-H", "content-type: application/json",
           "https://127.0.0.1:%d/v1/projects/%s/messages:send" % (mock.h2_port, PROJECT)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("finished in"):
            return float(line.split(",")[1].split()[0])
    raise SystemExit("cannot read h2load's output:\n" + out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20000)
    parser.add_argument("--platform", choices=("apns", "fcm"), default="apns")
    parser.add_argument("--connections", type=int, default=None,
                        help="the daemon's connection cap ([apns]/[fcm] connections); "
                             "default: the daemon's own default")
    parser.add_argument("--streams", type=int, default=1000,
                        help="the mock's SETTINGS_MAX_CONCURRENT_STREAMS")
    parser.add_argument("--delay-ms", type=int, default=0,
                        help="the mock holds every answer this long (a provider's RTT)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one-to-one-every-ms", type=int, default=0,
                        help="also POST a 1:1 room message this often during each push "
                             "and report how long each took to reach the mock")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")

    tmp = tempfile.mkdtemp(prefix="pushrelay-bench-")
    certs = mockctl.Certs.generate(os.path.join(tmp, "certs"))
    provider = {}
    if args.connections is not None:
        provider["connections"] = str(args.connections)
    if args.platform == "apns":
        mock = fixtures.apns_mock(certs, "--max-streams", str(args.streams), "--record-times",
                                  record=False)
        section = fixtures.apns_section(certs, mock.url(""), **provider)
    else:
        mock = fixtures.fcm_mock(certs, "--max-streams", str(args.streams), "--record-times",
                                 record=False)
        account = fixtures.fcm_account(certs, os.path.join(tmp, "sa.json"),
                                       mock.url("/token"))
        section = fixtures.fcm_section(certs, account, mock.url(""), **provider)
    if args.delay_ms > 0:
        mock.add_rule(delay_ms=args.delay_ms)
    daemon = harness.Daemon(config={
        "store": {"synchronous": "normal"},
        "delivery": {"queue_size": str(max(100000, args.devices * 2))},
        # A 1:1 message goes at once, not at the end of a coalescing window.
        "rooms": {"coalesce_window": "0"},
        **section,
    }, tmp=os.path.join(tmp, "daemon"))
    try:
        daemon.start()
        t = time.monotonic()
        if args.devices > 20000:
            register_directly(daemon, args.devices, "bench-room", args.platform)
            how = "into the database"
        else:
            register(daemon, args.devices, "bench-room", args.platform)
            how = "through the API"
        print("registered %d devices and memberships %s in %.1f s"
              % (args.devices, how, time.monotonic() - t))
        dm = (OneToOne(daemon, mock, args.one_to_one_every_ms, args.platform)
              if args.one_to_one_every_ms > 0 else None)
        # A warm-up push opens the connections and mints the provider token.
        run_push(daemon, mock, args.devices, "bench-room", "warm-up")
        mock.control("DELETE", "/arrivals")
        relay, sending, h2, conns, dm_latencies, dm_accepted = [], [], [], [], [], []
        for run in range(args.runs):
            if dm is not None:
                dm.start(run)
            elapsed, accepted, answering = run_push(daemon, mock, args.devices,
                                                    "bench-room",
                                                    "a message of ordinary length for a "
                                                    "chat notification")
            if dm is not None:
                lat, acc = dm.finish()
                dm_latencies += lat
                dm_accepted += acc
                print("run %d: %d 1:1 messages during the fan-out, from the POST p50 %.1f ms, "
                      "p99 %.1f ms, max %.1f ms; from its 202 p50 %.1f ms, max %.1f ms"
                      % (run + 1, len(lat), percentile(lat, 0.5), percentile(lat, 0.99),
                         lat[-1], percentile(acc, 0.5), acc[-1]))
            relay.append(args.devices / elapsed)
            sending.append(answering)
            # The daemon's HTTP/2 connections to the provider (its /metrics gauge).
            conns.append(provider_connections(daemon, args.platform))
            print("run %d: 202 after %.0f ms, all answered after %.0f ms, %.0f/s from the "
                  "first quarter answered to the third, over %d connections"
                  % (run + 1, accepted * 1000, elapsed * 1000, answering, conns[-1]))
            h2.append(run_h2load(mock, certs, args.devices, conns[-1], args.streams, 120,
                                 tmp, args.platform))
            print("run %d: pushrelayd %.0f notifications/s, h2load %.0f requests/s"
                  % (run + 1, relay[-1], h2[-1]))
        r, h, c = statistics.median(relay), statistics.median(h2), statistics.median(conns)
        a = statistics.median(sending)
        print("median over %d runs, %d %s devices, %d connections, %d streams each, "
              "answers delayed %d ms:" % (args.runs, args.devices, args.platform, c,
                                          args.streams, args.delay_ms))
        print("  pushrelayd  %10.0f notifications/s (POST /v1/push to the mock's answers)"
              % r)
        print("  h2load      %10.0f requests/s (same mock, same request shape, same "
              "connections)" % h)
        print("  ratio       %10.2f" % (r / h))
        print("  pushrelayd  %10.0f notifications/s steady (answers from the first "
              "quarter to the third)" % a)
        if dm_latencies:
            dm_latencies.sort()
            dm_accepted.sort()
            print("  1:1 messages during the fan-outs: %d; from the POST to the mock p50 %.1f "
                  "ms, p99 %.1f ms, max %.1f ms; from the 202 p50 %.1f ms, p99 %.1f ms, max "
                  "%.1f ms" % (len(dm_latencies), percentile(dm_latencies, 0.5),
                               percentile(dm_latencies, 0.99), dm_latencies[-1],
                               percentile(dm_accepted, 0.5), percentile(dm_accepted, 0.99),
                               dm_accepted[-1]))
        if args.delay_ms > 0:
            limit = c * args.streams * 1000.0 / args.delay_ms
            print("  connections x streams / RTT %10.0f/s; pushrelayd at %.2f of it "
                  "(%.2f steady), h2load at %.2f"
                  % (limit, r / limit, a / limit, h / limit))
    finally:
        daemon.cleanup()
        mock.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
