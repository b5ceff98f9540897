"""Several pushrelayd instances as one service: the room state in Redis.

Two or three daemons share one redis-server, whose [state] backend = redis keeps their
room state under one prefix (docs/state-redis.md), and one mock APNs and FCM. With the
SQLite store each daemon keeps its own registry, so every device and membership is
registered through each of them, under the same ids; test_state_redis_postgresql.py runs
the same tests with one PostgreSQL registry shared by all, as a deployment has it, every
device and membership registered once. Events go to whichever daemon a test names; each
test asserts exactly which notifications the mocks received.
"""

import json
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import (APP, PROJECT, SETTLE, NotificationCase, RedisError,  # noqa: E402
                      RedisServer, delete, enter, leave, message, metric, note, read,
                      record_message_id, record_token, update)

HAVE_REDIS = shutil.which("redis-server") is not None
NO_REDIS = "redis-server is not installed"
WINDOW = 0.6


def setUpModule():
    StateCase.certs, StateCase.tmp = mockctl.module_certs("pushrelay-state-redis-")


# ---- daemons sharing a redis-server ------------------------------------------------------

class StateCase(NotificationCase):
    """instances daemons on one redis-server (appendonly: with an append-only file), the
    [rooms] options of rooms, and streams: the Streams source on too."""

    instances = 2
    rooms = {"coalesce_window": "0", "presence_grace": "0"}
    appendonly = False
    streams = False
    stream = "rooms-state"

    @classmethod
    def setUpClass(cls):
        cls.server = cls.r = None
        cls.daemons = []
        super().setUpClass()

    @classmethod
    def _start(cls):
        cls.server = RedisServer(appendonly=cls.appendonly).start()
        cls.r = cls.server.client()
        cls.prefix = "it-%s:" % harness.uid()
        cls.start_mocks()
        for _ in range(cls.instances):
            shared = None
            if cls.daemons and cls.shared_registry():
                shared = {"store": {"backend": "postgresql", "postgresql":
                                    cls.daemons[0].option("store", "postgresql")}}
            cls.daemons.append(cls.make_daemon(shared))
        cls.daemon = cls.daemons[0]
        for daemon in cls.daemons:
            cls.start_and_wait(daemon)

    @staticmethod
    def shared_registry():
        """Do the daemons share one registry (PostgreSQL), or keep one each (SQLite)?"""
        return harness.store_backend() == "postgresql"

    @classmethod
    def base_config(cls):
        config = super().base_config()
        config["redis"] = {"address": cls.server.address, "reconnect_max": "300ms",
                           "connect_timeout": "1s"}
        config["state"] = {"backend": "redis", "prefix": cls.prefix}
        config["rooms"] = dict(cls.rooms)
        if cls.streams:
            config["streams"] = {"enabled": "yes", "keys": cls.stream, "block": "100ms"}
        return config

    @classmethod
    def start_and_wait(cls, daemon):
        """Start; wait until /readyz says the state (and everything else) is ready."""
        daemon.start()
        cls.wait_readyz(daemon, 200)

    @staticmethod
    def wait_readyz(daemon, status, timeout=10.0):
        """Poll /readyz until it answers status; its body."""
        deadline = time.monotonic() + timeout
        while True:
            st, _, body, raw = daemon.request("GET", "/readyz", key=None)
            if st == status:
                return body
            if time.monotonic() > deadline:
                raise AssertionError("/readyz: %d %r, not %d; log:\n%s"
                                     % (st, raw, status, daemon.log_text()[-4000:]))
            time.sleep(0.02)

    @classmethod
    def stop_all(cls):
        problems = []
        for daemon in cls.daemons[1:]:
            try:
                daemon.cleanup()
            except AssertionError as e:
                problems.append(str(e))
        problems += super().stop_all()
        if cls.r is not None:
            cls.r.close()
        if cls.server is not None:
            cls.server.stop()
        return problems

    def setUp(self):
        super().setUp()
        for daemon in self.daemons:
            if not daemon.running():
                self.start_and_wait(daemon)

    # -- every instance's registry --

    def registries(self):
        """The daemons to register through: one if they share the registry, else all."""
        return self.daemons[:1] if self.shared_registry() else self.daemons

    def register(self, client, platform):
        """One device of client, registered under the same id and token in every
        registry; tracked once."""
        device_id = "%s-%s-%s" % (client, platform, harness.uid())
        token = harness.apns_token() if platform == "apns" else harness.fcm_token()
        stored = None
        for daemon in self.registries():
            body = (harness.apns_device(client_id=client, app_id=APP, token=token)
                    if platform == "apns" else
                    harness.fcm_device(client_id=client, app_id=PROJECT, token=token))
            st, _, got, raw = daemon.request(
                "PUT", "/v1/devices/" + harness.quote(device_id), body=body)
            self.assertEqual(st, 201, raw)
            stored = stored or got
        self.devices[device_id] = stored
        self.by_client.setdefault(client, []).append(stored)
        self.expected.setdefault(device_id, [])
        return stored

    def join_all(self, room, *clients):
        for daemon in self.registries():
            self.join(room, *clients, daemon=daemon)

    def post(self, daemon, *events):
        """POST /v1/events to daemon; 202 with every event accepted."""
        st, _, body, raw = daemon.request("POST", "/v1/events", body={"events": list(events)})
        self.assertEqual(st, 202, raw)
        self.assertEqual(body, {"accepted": len(events), "skipped": []}, raw)

    def wait_for(self, what, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail("%s: not within %.0f s; logs:\n%s" % (what, timeout, "\n".join(
                    d.log_text()[-3000:] for d in self.daemons)))
            time.sleep(0.02)

    @staticmethod
    def trips(daemon, kind):
        """The daemon's round trips to the Redis state of a kind, so far."""
        return metric(daemon, "pushrelay_state_round_trips_total", kind=kind)

    def present(self, room, client):
        """Does Redis hold a live connection of client in room?"""
        value = self.r.command("HGET", "%spresence:{%s}" % (self.prefix, room), client)
        return value is not None and bool(json.loads(value)["c"])

    def wait_present(self, room, client, present=True):
        """Wait until an instance has handed a presence event to Redis: events posted
        to different instances are handled in no order between them."""
        self.wait_for("%s %s in %s" % (client, "present" if present else "away", room),
                      lambda: self.present(room, client) == present)

    def bucket(self, room, client):
        """The key of what is held for client in room."""
        return "%sbucket:{%s}:%s" % (self.prefix, room, client)

    def delivered(self, device_id):
        """The requests the mocks received for one of the test's devices."""
        return self.received()[device_id]


# ---- presence, dedupe and unread counts, shared ---------------------------------------------

@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestSharedState(StateCase):
    """Three instances; no coalescing, no grace: each message notifies at once."""

    instances = 3

    def test_presence_entered_through_one_instance_keeps_another_from_notifying(self):
        room = self.id_("r")
        a, b, c = self.id_("a"), self.id_("b"), self.id_("c")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.register(c, "apns")
        self.join_all(room, a, b, c)
        A, B, C = self.daemons
        trips = {d: (self.trips(d, "presence"), self.trips(d, "message")) for d in (A, B)}
        self.post(A, enter(room, b, "b-phone"))
        self.wait_present(room, b)
        # Through another instance: b is present, c (away) is the witness.
        self.post(B, message(room, "p1", a, "b is here"))
        self.expect(c, note(room, "p1", a, "b is here", badge=1))
        self.check()
        # One round trip to Redis for the presence event, one for the message.
        self.assertEqual(self.trips(A, "presence") - trips[A][0], 1)
        self.assertEqual(self.trips(B, "message") - trips[B][1], 1)
        self.assertEqual(self.trips(A, "message") - trips[A][1], 0)
        self.assertEqual(metric(A, "pushrelay_state_up", backend="redis"), 1)
        # b left through a third instance: away everywhere, notified through the first.
        self.post(C, leave(room, b, "b-phone"))
        self.wait_present(room, b, False)
        self.post(A, message(room, "p2", a, "b is gone"))
        self.expect(b, note(room, "p2", a, "b is gone", badge=1))
        self.expect(c, note(room, "p2", a, "b is gone", badge=2))
        self.check()

    def test_a_message_posted_to_two_instances_notifies_each_device_once(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join_all(room, a, b)
        A, B, C = self.daemons
        self.post(A, message(room, "d1", a, "once"))
        self.post(B, message(room, "d1", a, "once"))
        self.expect(b, note(room, "d1", a, "once", badge=1))
        self.check()
        # Counted once too: the next message's badge is 2, through the third instance.
        self.post(C, message(room, "d2", a, "twice"))
        self.expect(b, note(room, "d2", a, "twice", badge=2))
        self.check()

    def test_unread_counts_are_one_badge_across_instances_and_a_read_resets_them(self):
        r1, r2 = self.id_("r1"), self.id_("r2")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.join_all(r1, a, b)
        self.join_all(r2, a, b)
        A, B, C = self.daemons
        self.post(A, message(r1, "u1", a, "one"))
        self.expect(b, note(r1, "u1", a, "one", badge=1))
        self.check()
        self.post(B, message(r2, "u2", a, "two"))
        self.expect(b, note(r2, "u2", a, "two", badge=2))
        self.check()
        self.post(C, read(r1, b, "u1"))
        self.wait_for("the read in Redis", lambda: self.r.command(
            "HEXISTS", "%sunread:{%s}" % (self.prefix, b), r1) == 0)
        self.post(A, message(r2, "u3", a, "three"))
        self.expect(b, note(r2, "u3", a, "three", badge=2))
        self.check()

    def test_after_every_instance_restarts_presence_is_what_redis_holds(self):
        room = self.id_("r")
        a, b, c = self.id_("a"), self.id_("b"), self.id_("c")
        self.register(b, "apns")
        self.register(c, "fcm")
        self.join_all(room, a, b, c)
        self.post(self.daemons[0], enter(room, b, "b-laptop"))
        self.wait_present(room, b)
        for daemon in self.daemons:
            daemon.stop()
        for daemon in self.daemons:
            self.start_and_wait(daemon)
        # No "everyone is away" after the restart: b is still present.
        self.post(self.daemons[2], message(room, "s1", a, "after the restart"))
        self.expect(c, note(room, "s1", a, "after the restart", badge=1))
        self.check()
        self.post(self.daemons[1], leave(room, b, "b-laptop"))
        self.wait_present(room, b, False)
        self.post(self.daemons[2], message(room, "s2", a, "b left"))
        self.expect(b, note(room, "s2", a, "b left", badge=1))
        self.expect(c, note(room, "s2", a, "b left", badge=2))
        self.check()


# ---- coalescing and what is held, shared --------------------------------------------------

@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestSharedCoalescing(StateCase):
    """Three instances, a coalescing window of WINDOW s."""

    instances = 3
    rooms = {"coalesce_window": "%dms" % (WINDOW * 1000), "presence_grace": "0"}
    settle = WINDOW + SETTLE

    def test_messages_through_three_instances_within_the_window_become_one(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join_all(room, a, b)
        before = [metric(d, "pushrelay_router_coalesced_total") or 0 for d in self.daemons]
        posted_ms = harness.now_ms()
        # Each through another instance, which may hold them in another order: the
        # notification shows the one posted last (ts), whatever the order they came.
        for i, (daemon, (mid, text)) in enumerate(zip(self.daemons, (
                ("c1", "first"), ("c2", "second"), ("c3", "third")))):
            self.post(daemon, message(room, mid, a, text, sender_name="Ann",
                                      room_name="Team", ts=posted_ms + i))
        self.expect(b, note(room, "c3", a, "third", badge=3, count=3, sender_name="Ann",
                            room_name="Team"))
        got = self.check()
        for records in got.values():
            for r in records:
                self.assertGreaterEqual(r["time_ms"] - posted_ms, WINDOW * 1000 - 10,
                                        "sent before the window ended")
        # One instance sent it, counting the two folded into it.
        after = [metric(d, "pushrelay_router_coalesced_total") or 0 for d in self.daemons]
        self.assertEqual(sorted(x - y for x, y in zip(after, before)), [0, 0, 2])

    def test_a_held_message_is_sent_by_another_instance_when_its_own_died(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.join_all(room, a, b)
        A = self.daemons[0]
        self.post(A, message(room, "k1", a, "held in redis"))
        # Held in Redis, acknowledged: the instance that held it may die.
        self.wait_for("k1 held", lambda: self.r.command(
            "HEXISTS", self.bucket(room, b), "k1") == 1)
        A.kill9()
        self.expect(b, note(room, "k1", a, "held in redis", badge=1))
        self.check()

    def test_a_deletion_through_another_instance_reaches_what_is_held(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join_all(room, a, b)
        A, B, C = self.daemons
        self.post(A, message(room, "e1", a, "keep me"), message(room, "e2", a, "delete me"))
        # Held (an edit that comes before the message is held elsewhere does not
        # reach it: docs/state-redis.md).
        self.wait_for("e1 and e2 held", lambda: self.r.command(
            "HLEN", self.bucket(room, b)) == 3)
        self.post(B, delete(room, "e2"))
        self.post(C, update(room, "e1", "kept"))
        self.wait_for("the edit and the deletion in Redis", lambda: self.r.command(
            "HLEN", self.bucket(room, b)) == 2 and "kept" in self.r.command(
            "HGET", self.bucket(room, b), "e1"))
        self.expect(b, note(room, "e1", a, "kept", badge=2))
        self.check()
        # Deleted before it came (through another instance): it never goes.
        self.post(B, delete(room, "e3"))
        self.wait_for("e3's deletion in Redis", lambda: self.r.command(
            "GET", "%smsg:{%s}:e3" % (self.prefix, room)) == "d")
        self.post(C, message(room, "e3", a, "too late"))
        self.post(A, message(room, "e4", a, "after"))
        self.expect(b, note(room, "e4", a, "after", badge=3))
        self.check()


# ---- Redis restarted under a stream ------------------------------------------------------

@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestRedisRestart(StateCase):
    """Two instances reading one stream in one group; Redis with an append-only file."""

    instances = 2
    appendonly = True
    streams = True

    def xadd(self, event):
        """XADD the event, reconnecting while Redis is away; the entry's id."""
        deadline = time.monotonic() + 20
        while True:
            try:
                return self.r.command("XADD", self.stream, "*", "event", json.dumps(event))
            except (OSError, RedisError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                try:
                    self.r.close()
                except OSError:
                    pass
                try:
                    type(self).r = self.server.client()
                except OSError:
                    pass

    def test_redis_restarted_mid_stream_intake_resumes_and_nothing_acknowledged_is_lost(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        [dev] = [self.register(b, "apns")]
        self.join_all(room, a, b)
        sent = []
        for i in range(15):
            mid = "x%02d" % i
            self.xadd(message(room, mid, a, "before " + mid))
            sent.append(mid)
            time.sleep(0.01)
        port = self.server.port
        self.server.stop(remove=False)
        # Down: not ready, nothing taken from the stream meanwhile is lost.
        for daemon in self.daemons:
            body = self.wait_readyz(daemon, 503)
            self.assertEqual(body["state"], "disconnected")
        st, _, body, raw = self.daemons[0].request(
            "POST", "/v1/events", body={"events": [message(room, "h1", a, "over http")]})
        self.assertIn(st, (202, 503), raw)
        if st == 202:
            sent.append("h1")
        self.server.start(port=port)
        for i in range(15, 30):
            mid = "x%02d" % i
            self.xadd(message(room, mid, a, "after " + mid))
            sent.append(mid)
            time.sleep(0.01)
        for daemon in self.daemons:
            self.wait_readyz(daemon, 200)
        # Every acknowledged message once, each counted once as unread.
        self.wait_for("every message notified", lambda: len(
            self.delivered(dev["device_id"])) >= len(sent), timeout=20)
        time.sleep(SETTLE)
        records = self.delivered(dev["device_id"])
        ids = sorted(record_message_id(r) for r in records)
        self.assertEqual(ids, sorted(sent))
        # Counted once each: a call answered before the restart and sent again after
        # it recognizes its own earlier run.
        self.assertEqual(self.r.command("HGET", "%sunread:{%s}" % (self.prefix, b), ""),
                         str(len(sent)))
        for r in records:
            self.assertLessEqual(json.loads(r["body"])["aps"]["badge"], len(sent))
        for r in records:
            self.assertEqual(record_token(r), dev["token"])
            self.assertEqual(r["status"], 200)
        # And every entry acknowledged.
        self.wait_for("no entry pending", lambda: self.r.command(
            "XPENDING", self.stream, "pushrelay")[0] == 0)


# ---- one instance killed in the middle of a burst on the stream ----------------------------

@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestKillMidBurst(StateCase):
    """Three instances reading one stream in one group; one is killed with kill -9
    while 5,000 messages go through. Nothing is lost: its pending entries are claimed
    by the others once idle for [streams] claim_idle, and every message reaches the
    recipient's device (some twice: delivery is at least once)."""

    instances = 3
    streams = True
    burst = 5000

    @classmethod
    def base_config(cls):
        config = super().base_config()
        config["streams"]["claim_idle"] = "1s"
        return config

    def test_kill_9_of_one_instance_mid_burst_loses_nothing(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        dev = self.register(b, "apns")
        self.join_all(room, a, b)
        # Answers held a while, so that what an instance has read waits, pending, in it.
        self.apns.add_rule(delay_ms=300)
        self.addCleanup(self.apns.clear_rules)
        # The burst, pipelined: XADD on one connection, answers read after.
        ids = ["k%05d" % i for i in range(self.burst)]
        self.r.pipeline([["XADD", self.stream, "*", "event",
                          json.dumps(message(room, mid, a, "burst " + mid))] for mid in ids])
        # A third through, kill the first instance: what it had read is pending in it.
        self.wait_for("a third delivered", lambda: len(
            self.delivered(dev["device_id"])) >= self.burst // 3, timeout=60)
        killed_at = time.monotonic()
        self.daemons[0].kill9()
        # What the killed instance had read and not acknowledged: left pending in it.
        summary = self.r.command("XPENDING", self.stream, "pushrelay")
        pending = {c.decode() if isinstance(c, bytes) else c: int(n)
                   for c, n in (summary[3] or [])}
        self.assertGreater(sum(pending.values()), 0, summary)
        self.wait_for("every message delivered", lambda: len(
            {record_message_id(r) for r in self.delivered(dev["device_id"])}) >= self.burst,
            timeout=120)
        # Its pending entries went to the others within claim_idle (and their polling).
        self.wait_for("no entry pending", lambda: self.r.command(
            "XPENDING", self.stream, "pushrelay")[0] == 0, timeout=30)
        claimed_within = time.monotonic() - killed_at
        records = self.delivered(dev["device_id"])
        self.assertEqual({record_message_id(r) for r in records}, set(ids))
        self.assertTrue(all(r["status"] == 200 for r in records))
        print("# %d messages, %d pending at the kill, %d notifications (%d sent twice), "
              "all acknowledged %.1f s after the kill" % (
                  self.burst, sum(pending.values()), len(records),
                  len(records) - self.burst, claimed_within))


if __name__ == "__main__":
    harness.main()
