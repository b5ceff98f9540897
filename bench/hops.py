#!/usr/bin/env python3
"""Hop count: the module boundaries one room message crosses, from its Redis Streams
entry to the request at APNs and back to its XACK.

A measurement, not a test. It needs a pushrelayd built with -finstrument-functions
and bench/hops_hook.c (see --build), which records every function entry. One message
is XADDed to a 1:1 room whose recipient is away with one APNs device (a mock APNs over
TLS + HTTP/2, a real redis-server); the records between the XADD and the moment the
entry is no longer pending (XACKed) are the message's path.

Each call from a function in one file to a function in another is a hop, counted
between the pipeline's files only (src/contrib/ and src/core/ helpers are not stages,
and neither is the event loop dispatching a callback). A hop "goes back up" when it
calls a file of an earlier stage (ingest < route < deliver < provider < h2; store and
api beside); it is "by name" when the caller's file names the callee, else it went
through a callback it was given. Periodic timers that fire in the window (flushes,
sweeps, heartbeats) are left out by the name of their callback.

    python3 bench/hops.py --build /tmp/hops-build [--commit REV]   # build, then measure
    python3 bench/hops.py --pushrelayd /tmp/hops-build/src/pushrelayd
"""

import argparse
import collections
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

STAGES = {"ingest": 1, "route": 2, "deliver": 3, "provider": 4, "h2": 5,
          "store": 6, "api": 6}
HELPERS = ("contrib", "core")
PERIODIC = re.compile(r"(tick|sweep|heartbeat|expire|accept_timer|watch|probe|refresh)")
RECORD = struct.Struct("=QQII")
# Where the files of the flat src/ (before it had folders) belong, so a build of an
# older tree is counted the same way.
FLAT = {
    "ably.c": "ingest", "api.c": "api", "api_ably.c": "api", "api_conn.c": "api",
    "api_devices.c": "api", "api_events.c": "api", "api_feedback.c": "api",
    "api_health.c": "api", "api_metrics.c": "api", "api_push.c": "api",
    "api_rooms.c": "api", "apikey.c": "api", "apns.c": "provider",
    "base64.c": "contrib", "clock.c": "core", "config.c": "core",
    "delivery.c": "deliver", "delivery_content.c": "deliver", "event.c": "route",
    "fcm.c": "provider", "feedback.c": "deliver", "h2_client.c": "h2",
    "h2_pool.c": "h2", "httpc.c": "provider", "jwt.c": "provider", "log.c": "core",
    "metrics.c": "core", "model.c": "core", "notification.c": "deliver",
    "payload.c": "provider", "presence.c": "route", "provider_log.c": "provider",
    "push.c": "deliver", "retry_after.c": "contrib", "router.c": "route",
    "secret_file.c": "contrib", "source_http.c": "ingest", "source_redis.c": "ingest",
    "store.c": "store", "store_sqlite.c": "store", "store_writer.c": "store",
    "strmap.c": "contrib", "tls.c": "h2", "utf8.c": "contrib", "xmalloc.c": "contrib",
}


def build(srcdir, builddir, commit):
    """An instrumented build of a commit of srcdir's repository in builddir."""
    if os.path.exists(builddir):
        shutil.rmtree(builddir)
    subprocess.check_call(["git", "clone", "-q", srcdir, builddir])
    subprocess.check_call(["git", "-C", builddir, "checkout", "-q", commit])
    hook = os.path.join(builddir, "hops_hook.o")
    subprocess.check_call(["gcc", "-O2", "-c", os.path.join(HERE, "hops_hook.c"), "-o", hook])
    subprocess.check_call("./autogen.sh >/dev/null 2>&1 && ./configure --without-jemalloc "
                          "CFLAGS='-O0 -g -finstrument-functions' LIBS='%s' >/dev/null && "
                          "make -j2 src/pushrelayd tests/mocks/mock_apns >/dev/null" % hook,
                          shell=True, cwd=builddir)
    return os.path.join(builddir, "src", "pushrelayd")


def symbolize(binary, offsets):
    """{offset: (function, path relative to src/)}."""
    offsets = sorted(offsets)
    out = subprocess.check_output(["addr2line", "-f", "-e", binary] +
                                  ["0x%x" % o for o in offsets]).decode().splitlines()
    names = {}
    for i, o in enumerate(offsets):
        fn, loc = out[2 * i], out[2 * i + 1].split(":")[0]
        m = re.search(r"/src/(.*)$", loc)
        names[o] = (fn, m.group(1) if m else loc)
    return names


def stage_name(path):
    return path.split("/")[0] if "/" in path else FLAT.get(path, "")


def stage(path):
    top = path.split("/")[0] if "/" in path else FLAT.get(path, "")
    return STAGES.get(top)


def measure(args):
    import rooms_bench as rb
    import harness
    import mockctl
    import fixtures

    binary = args.pushrelayd
    os.environ["PUSHRELAYD"] = binary
    builddir = os.path.dirname(os.path.dirname(binary))
    os.environ["PUSHRELAY_TOP_BUILDDIR"] = builddir
    tmp = tempfile.mkdtemp(prefix="pushrelay-hops-")
    trace = os.path.join(tmp, "hops.bin")
    certs = mockctl.Certs.generate(os.path.join(tmp, "certs"))
    mock = fixtures.apns_mock(certs, record=False)
    redis = fixtures.RedisServer(directory=os.path.join(tmp, "redis")).start()
    os.environ["PUSHRELAY_HOPS_FILE"] = trace
    daemon = harness.Daemon(config={
        "redis": {"address": "127.0.0.1:%d" % redis.port},
        "streams": {"enabled": "yes", "keys": rb.STREAM, "group": "pushrelay",
                    "consumer": "hops", "block": "1s"},
        "rooms": {"coalesce_window": "0"},
        **fixtures.apns_section(certs, mock.url("")),
    }, tmp=os.path.join(tmp, "daemon"))
    rc = rb.RespConn(redis.port)
    try:
        daemon.start()
        del os.environ["PUSHRELAY_HOPS_FILE"]
        rb.register(daemon, [rb.device_job("dm-0", rb.dm_recipient(0), rb.dm_token(0)),
                             rb.member_job(rb.dm_room(0), rb.dm_recipient(0)),
                             rb.member_job(rb.dm_room(0), rb.dm_sender(0))], 1)

        def one(mid):
            rc.command("XADD", rb.STREAM, "*", "event",
                       rb.message(rb.dm_room(0), mid, rb.dm_sender(0)))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.001)
                pending = rc.command("XPENDING", rb.STREAM, "pushrelay")
                if pending[0] == 0 and rc.command("XLEN", rb.STREAM) > 0:
                    return
            raise SystemExit("the message was not XACKed in 10 s")
        one("warm-up")          # opens the APNs connection, mints the token
        time.sleep(0.5)
        start = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        one("measured")
        end = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    finally:
        daemon.stop()
        mock.stop()
        redis.stop()

    records = []
    with open(trace, "rb") as f:
        data = f.read()
    for i in range(0, len(data) - RECORD.size + 1, RECORD.size):
        records.append(RECORD.unpack_from(data, i))
    names = symbolize(binary, {r[1] for r in records})
    last_at_depth = {}
    edges = []
    roots = collections.Counter()
    for ns, off, tid, depth in records:
        fn, path = names[off]
        node = (fn, path)
        parent = last_at_depth.get((tid, depth - 1))
        last_at_depth[(tid, depth)] = (node, ns, parent[2] if parent else node)
        if not start <= ns <= end:
            continue
        if parent is None or parent[1] < start or parent[0][0] in ("daemon_run", "main"):
            last_at_depth[(tid, depth)] = (node, ns, node)      # a callback's root
            roots[fn] += 1
            continue
        edges.append((parent[0], node, last_at_depth[(tid, depth)][2]))
    skipped = {fn for fn in roots if PERIODIC.search(fn)}
    hops = []
    for caller, callee, root in edges:
        if root[0] in skipped:
            continue
        a, b = caller[1], callee[1]
        if a == b or stage(a) is None or stage(b) is None:
            continue
        hops.append((caller, callee))
    source_text = {}

    def names_callee(path, fn):
        if path not in source_text:
            p = os.path.join(builddir, "src", path)
            source_text[path] = open(p).read() if os.path.exists(p) else ""
        return re.search(r"\b%s\s*\(" % re.escape(fn), source_text[path]) is not None
    up_by_name = up_by_callback = 0
    print("hops of one message (caller -> callee), %d records in %.1f ms:" %
          (sum(1 for r in records if start <= r[0] <= end), (end - start) / 1e6))
    for caller, callee in hops:
        note = ""
        if stage(callee[1]) < stage(caller[1]):
            if names_callee(caller[1], callee[0]):
                up_by_name += 1
                note = "  <- back up, by name"
            else:
                up_by_callback += 1
                note = "  <- back up, through a callback"
        print("  %-28s %-26s -> %-28s %s%s" % (caller[1], caller[0], callee[1], callee[0],
                                               note))
    visits = sum(1 for caller, callee in hops if callee[1].endswith("router.c"))
    files = len({h[1][1] for h in hops} | {h[0][1] for h in hops})
    print("callback roots in the window: %s" % ", ".join(
        "%s%s" % (fn, " (periodic, left out)" if fn in skipped else "")
        for fn in sorted(roots)))
    crossings = [h for h in hops if stage_name(h[0][1]) != stage_name(h[1][1])]
    print("%d hops between %d files; %d back up (%d by name, %d through a callback); "
          "router.c entered %d times" % (len(hops), files, up_by_name + up_by_callback,
                                         up_by_name, up_by_callback, visits))
    print("%d of the hops cross from one stage (folder) to another: %s" % (
        len(crossings), ", ".join("%s %d" % (k, v) for k, v in sorted(collections.Counter(
            "%s->%s" % (stage_name(a[1]), stage_name(b[1])) for a, b in crossings).items()))))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--srcdir", default=os.path.dirname(HERE),
                        help="the source tree (for --build, and to tell calls by name)")
    parser.add_argument("--build", metavar="DIR",
                        help="clone --srcdir's HEAD into DIR and build it instrumented")
    parser.add_argument("--commit", default="HEAD", help="what --build builds")
    parser.add_argument("--pushrelayd", help="an instrumented pushrelayd")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.build:
        args.pushrelayd = build(args.srcdir, args.build, args.commit)
    if not args.pushrelayd:
        parser.error("--build or --pushrelayd")
    sys.path.insert(0, os.path.join(args.srcdir, "tests", "integration"))
    os.environ.setdefault("PUSHRELAY_TOP_SRCDIR", args.srcdir)
    measure(args)


if __name__ == "__main__":
    main()
