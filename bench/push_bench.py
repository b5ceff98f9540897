#!/usr/bin/env python3
"""Fan-out benchmark: one POST /v1/push to a room of N members, delivered to mock APNs.

Registers N devices (one per member) through the API, joins them to one room, sends
one push to the room and measures how fast the mock APNs answers the N requests. In
the same run, h2load sends N requests of the same shape (same headers, same body size,
a valid provider token) straight to the same mock, with the same number of
connections. Prints both rates and their ratio.

Run from a configured build tree (after `make`), e.g.:
    python3 bench/push_bench.py --devices 50000
Environment: PUSHRELAYD, PUSHRELAY_TOP_SRCDIR, PUSHRELAY_TOP_BUILDDIR (defaults: this
source tree and the current directory as the build tree).
"""

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
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
from fixtures import APP  # noqa: E402


def token_for(i):
    return "%064x" % (0xA0000000 + i)


def register(daemon, n, room):
    """Register n devices and their memberships over keep-alive connections."""
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    headers = {"Authorization": "Bearer " + daemon.key, "Content-Type": "application/json"}
    for i in range(n):
        body = json.dumps({"client_id": "member-%d" % i, "platform": "apns",
                           "app_id": APP, "token": token_for(i)})
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


def mock_requests(mock):
    return mock.stats().get("requests", 0)


def run_push(daemon, mock, n, room, body_text):
    """One push to the room; seconds until the mock has answered n more requests."""
    before = mock_requests(mock)
    payload = {"recipients": {"room_id": room},
               "notification": {"title": "Bench room", "body": body_text,
                                "thread_id": room, "data": {"room": room}}}
    start = time.monotonic()
    status, _, answer, raw = daemon.request("POST", "/v1/push", body=payload, timeout=120)
    if status != 202:
        raise SystemExit("push failed: %d %r" % (status, raw))
    accepted = time.monotonic() - start
    while mock_requests(mock) - before < n:
        if time.monotonic() - start > 300:
            raise SystemExit("timed out: %d of %d delivered"
                             % (mock_requests(mock) - before, n))
        time.sleep(0.002)
    elapsed = time.monotonic() - start
    return elapsed, accepted


def run_h2load(mock, certs, n, connections, streams, body_len, tmp):
    """h2load with the daemon's request shape; requests per second."""
    body = json.dumps({"aps": {"alert": {"title": "Bench room", "body": "x"}}})
    body = body.replace('"x"', '"' + "x" * max(1, body_len - len(body) + 1) + '"')
    return fixtures.apns_h2load_rate(mock, certs, token_for(0), body, n, connections,
                                     streams, tmp)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--streams", type=int, default=1000,
                        help="the mock's SETTINGS_MAX_CONCURRENT_STREAMS")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")

    tmp = tempfile.mkdtemp(prefix="pushrelay-bench-")
    certs = mockctl.Certs.generate(os.path.join(tmp, "certs"))
    mock = fixtures.apns_mock(certs, "--max-streams", str(args.streams), record=False)
    daemon = harness.Daemon(config={
        "store": {"synchronous": "normal"},
        "delivery": {"queue_size": str(max(100000, args.devices * 2))},
        **fixtures.apns_section(certs, mock.url(""), connections=str(args.connections)),
    }, tmp=os.path.join(tmp, "daemon"))
    try:
        daemon.start()
        t = time.monotonic()
        register(daemon, args.devices, "bench-room")
        print("registered %d devices and memberships in %.1f s"
              % (args.devices, time.monotonic() - t))
        # A warm-up push opens the connections and mints the provider token.
        run_push(daemon, mock, args.devices, "bench-room", "warm-up")
        relay, h2 = [], []
        for run in range(args.runs):
            elapsed, accepted = run_push(daemon, mock, args.devices, "bench-room",
                                         "a message of ordinary length for a chat "
                                         "notification")
            relay.append(args.devices / elapsed)
            print("run %d: 202 after %.0f ms, all delivered after %.0f ms"
                  % (run + 1, accepted * 1000, elapsed * 1000))
            h2.append(run_h2load(mock, certs, args.devices, args.connections,
                                 args.streams, 120, tmp))
            print("run %d: pushrelayd %.0f notifications/s, h2load %.0f requests/s"
                  % (run + 1, relay[-1], h2[-1]))
        r, h = statistics.median(relay), statistics.median(h2)
        print("median over %d runs, %d devices, %d connections:" % (args.runs, args.devices,
                                                                      args.connections))
        print("  pushrelayd  %10.0f notifications/s (POST /v1/push to the mock's answers)"
              % r)
        print("  h2load      %10.0f requests/s (same mock, same request shape)" % h)
        print("  ratio       %10.2f" % (r / h))
    finally:
        daemon.cleanup()
        mock.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
