"""Room events from Redis Pub/Sub, Redis Streams and Ably webhooks, end to end.

The real pushrelayd reads a real redis-server that each test class starts for itself
(a free loopback port, a temporary directory, no persistence; stopped at the end) and
sends to the mock APNs and FCM. Devices and memberships are registered through the
API; events are PUBLISHed, XADDed, or POSTed to /v1/ingest/ably in Ably's own
webhook formats (built from Ably's documented shapes, not from
src/ingest/source_ably.c). Each asserts exactly which devices the mocks received notifications for, with their exact
bodies (docs/events.md, src/route/notify_text.c), and that nothing else arrived.

The Redis classes are skipped when redis-server is not installed.
"""

import base64
import json
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import (ABLY_KEY, SETTLE, NotificationCase, metric,  # noqa: E402
                      RedisServer, member_join, message, note, presence, record_message_id,
                      record_token, sign, sync, write_ably_keys)
from harness import uid  # noqa: E402

HAVE_REDIS = shutil.which("redis-server") is not None
NO_REDIS = "redis-server is not installed"

_TMP = None


def setUpModule():
    global _TMP
    SourcesCase.certs, SourcesCase.tmp = mockctl.module_certs("pushrelay-sources-")
    _TMP = SourcesCase.tmp





# ---- a daemon with mocks (and a redis-server) ---------------------------------------------

class SourcesCase(NotificationCase):
    """NotificationCase with, if redis, a redis-server of its own.

    waits: the redis sources whose "redis connected" line start-up waits for.
    """

    redis = False
    redis_password = None
    waits = ()
    join_status = (200, 201)

    @classmethod
    def setUpClass(cls):
        cls.server = cls.r = None
        super().setUpClass()

    @classmethod
    def _start(cls):
        if cls.redis:
            cls.server = RedisServer(cls.redis_password).start()
            cls.r = cls.server.client()
        super()._start()

    @classmethod
    def base_config(cls):
        config = super().base_config()
        if cls.server is not None:
            config["redis"] = {"address": cls.server.address, "reconnect_max": "500ms",
                               "connect_timeout": "1s"}
        return config

    @classmethod
    def start_and_wait(cls, daemon, waits=None):
        """Start; wait until every redis source of waits (default cls.waits) is connected."""
        offset = daemon.log_offset()
        daemon.start()
        for source in (cls.waits if waits is None else waits):
            daemon.wait_for_log(lambda f, s=source: f.get("msg") == "redis connected" and
                                f.get("source") == s, since=offset)

    @classmethod
    def stop_all(cls):
        problems = super().stop_all()
        if cls.r is not None:
            cls.r.close()
        if cls.server is not None:
            cls.server.stop()
        return problems

    def wait_for(self, what, predicate, timeout=10.0, daemon=None):
        """Poll predicate() until it returns a true value; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail("%s: not within %.0f s; daemon log:\n%s"
                          % (what, timeout, (daemon or self.daemon).log_text()[-6000:]))
            time.sleep(0.02)


# ---- Redis Pub/Sub --------------------------------------------------------------------------

@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestPubSub(SourcesCase):

    redis = True
    waits = ("redis-pubsub",)

    @classmethod
    def config(cls):
        return {"pubsub": {"enabled": "yes", "pattern": "room:*"}}

    def publish(self, room, *events):
        """PUBLISH each event (a dict, or raw bytes/str) to room:ROOM; one subscriber."""
        for event in events:
            payload = event if isinstance(event, (bytes, str)) else json.dumps(event)
            if isinstance(payload, bytes):
                payload = payload.decode("utf-8")
            self.assertEqual(self.r.command("PUBLISH", "room:" + room, payload), 1,
                             "the daemon is not subscribed")

    def skipped(self, reason):
        return metric(self.daemon, "pushrelay_events_skipped_total", source="redis-pubsub",
                      reason=reason)

    def test_support_chat_notifies_only_the_away_customer(self):
        room = self.id_("support")
        customer, agent = self.id_("customer"), self.id_("agent")
        self.register(customer, "apns")
        self.register(customer, "fcm")
        self.register(agent, "apns")
        self.register(agent, "fcm")
        self.join(room, customer, agent)
        # No room in the events: it is the part of the channel that * matched.
        self.publish(room, presence("enter", None, agent, "desk"),
                     presence("enter", None, customer, "phone"),
                     presence("leave", None, customer, "phone"),
                     message(None, "m1", customer, "Where is my parcel?"),
                     message(None, "m2", agent, "It left the depot this morning."))
        self.expect(customer, note(room, "m2", agent, "It left the depot this morning.",
                                   badge=1))
        self.check()

    def test_room_of_the_event_wins_over_the_channel(self):
        room, channel_room = self.id_("real"), self.id_("channel")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "fcm")
        self.register(b, "apns")
        self.join(room, a, b)
        self.join(channel_room, a, b)
        self.publish(channel_room, message(room, "w1", a, "which room?"))
        self.expect(b, note(room, "w1", a, "which room?", badge=1))
        self.check()

    def test_presence_over_pubsub_decides_who_is_notified(self):
        room = self.id_("team")
        a, b, c, d, e = (self.id_(n) for n in ("ann", "bob", "cid", "dee", "eve"))
        for client, platform in ((a, "apns"), (b, "fcm"), (c, "apns"), (d, "fcm"),
                                 (e, "apns"), (e, "fcm")):
            self.register(client, platform)
        self.publish(room, *(member_join(None, x) for x in (a, b, c, d, e)))
        self.wait_members(room, [a, b, c, d, e])
        # b and c present (sync); d on two connections, leaves one: still present.
        self.publish(room, sync(None, [b, c]),
                     presence("enter", None, d, "d-1"), presence("enter", None, d, "d-2"),
                     presence("leave", None, d, "d-1"),
                     message(None, "p1", a, "one"))
        self.expect(e, note(room, "p1", a, "one", badge=1))
        self.check()
        # c leaves on every connection, d on its last one.
        self.publish(room, presence("leave", None, c), presence("leave", None, d, "d-2"),
                     message(None, "p2", a, "two"))
        self.expect(c, note(room, "p2", a, "two", badge=1))
        self.expect(d, note(room, "p2", a, "two", badge=1))
        self.expect(e, note(room, "p2", a, "two", badge=2))
        self.check()
        # presence.update enters c again; a, who only ever sent, is away.
        self.publish(room, presence("update", None, c, "c-9"), message(None, "p3", b, "three"))
        self.expect(a, note(room, "p3", b, "three", badge=1))
        self.expect(d, note(room, "p3", b, "three", badge=2))
        self.expect(e, note(room, "p3", b, "three", badge=3))
        self.check()

    def test_malformed_payloads_are_counted_and_the_source_keeps_going(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        malformed, unknown = self.skipped("malformed"), self.skipped("unknown")
        self.assertIsNotNone(malformed)
        self.assertIsNotNone(unknown)
        self.publish(room, b"not json {", "[1, 2]", '"a string"',
                     {"type": "message", "id": "x1", "text": "no sender"},
                     {"type": "message", "id": "x2", "client_id": a, "text": "t",
                      "mentions": "b"},
                     {"type": "no.such.type", "client_id": a},
                     message(None, "ok1", a, "still here"))
        self.expect(b, note(room, "ok1", a, "still here", badge=1))
        self.check()
        self.wait_for("skipped counters", lambda: (self.skipped("malformed"),
                                                   self.skipped("unknown"))
                      == (malformed + 5, unknown + 1))
        lines = self.daemon.find_log(lambda f: f.get("msg") == "event skipped" and
                                     f.get("source") == "redis-pubsub", since=self.log_start)
        self.assertGreaterEqual(len(lines), 1)
        self.assertEqual(lines[0].get("channel"), "room:" + room)
        self.assertEqual(lines[0].get("reason"), "malformed")

    def test_resubscribes_after_client_kill_and_later_messages_arrive(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        reconnects = metric(self.daemon, "pushrelay_source_reconnects_total",
                            source="redis-pubsub")
        self.publish(room, message(None, "k1", a, "before"))
        self.expect(b, note(room, "k1", a, "before", badge=1))
        self.check()
        offset = self.daemon.log_offset()
        self.assertGreaterEqual(self.r.command("CLIENT", "KILL", "TYPE", "pubsub"), 1)
        self.daemon.wait_for_log(lambda f: f.get("msg") == "redis connection lost" and
                                 f.get("source") == "redis-pubsub", since=offset)
        self.daemon.wait_for_log(lambda f: f.get("msg") == "redis connection restored" and
                                 f.get("source") == "redis-pubsub", since=offset)
        self.assertEqual(self.r.command("PUBSUB", "NUMPAT"), 1)
        self.assertEqual(metric(self.daemon, "pushrelay_source_reconnects_total",
                                source="redis-pubsub"), reconnects + 1)
        self.assertEqual(metric(self.daemon, "pushrelay_source_connected",
                                source="redis-pubsub"), 1)
        self.publish(room, message(None, "k2", a, "after"))
        self.expect(b, note(room, "k2", a, "after", badge=2))
        self.check()


# ---- readiness follows the Redis link ----------------------------------------------------

@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestRedisReadiness(SourcesCase):

    redis = True
    waits = ("redis-pubsub", "redis-streams")

    @classmethod
    def config(cls):
        return {"pubsub": {"enabled": "yes"},
                "streams": {"enabled": "yes", "keys": "rooms", "block": "100ms"}}

    def readyz(self):
        status, _, body, raw = self.daemon.request("GET", "/readyz", key=None)
        self.assertIsInstance(body, dict, raw)
        self.assertIsInstance(body.pop("loop_lag_ms", None), int, raw)
        return status, body

    def test_readyz_is_503_naming_the_redis_sources_while_redis_is_down(self):
        ready = (200, {"status": "ready", "store": "ok", "redis-pubsub": "ok",
                       "redis-streams": "ok"})
        self.wait_for("ready", lambda: self.readyz() == ready)
        port = self.server.port
        offset = self.daemon.log_offset()
        self.server.stop(remove=False)
        down = (503, {"status": "unavailable", "store": "ok",
                      "redis-pubsub": "disconnected", "redis-streams": "disconnected"})
        self.wait_for("not ready while redis is down", lambda: self.readyz() == down)
        self.daemon.wait_for_log(lambda f: f.get("msg") == "redis connection lost",
                                 since=offset)
        # Still down a moment later: reconnection attempts do not make it ready.
        time.sleep(1.0)
        self.assertEqual(self.readyz(), down)
        self.server.start(port=port)
        self.wait_for("ready once redis is back", lambda: self.readyz() == ready)


# ---- Redis with AUTH ------------------------------------------------------------------------

@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestRedisAuth(SourcesCase):

    redis = True
    redis_password = "pw-" + os.urandom(12).hex()
    waits = ("redis-pubsub", "redis-streams")

    @classmethod
    def config(cls):
        path = os.path.join(_TMP, "redis-password-%s" % cls.__name__)
        with open(path, "w") as f:
            f.write(cls.redis_password + "\n")
        os.chmod(path, 0o600)
        return {"redis": {"password_file": path},
                "pubsub": {"enabled": "yes"},
                "streams": {"enabled": "yes", "keys": "rooms", "block": "100ms"},
                "log": {"level": "debug"}}

    def test_password_file_authenticates_both_sources_and_is_never_logged(self):
        r1, r2 = self.id_("r1"), self.id_("r2")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "fcm")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(r1, a, b)
        self.join(r2, a, b)
        self.assertEqual(self.r.command("PUBLISH", "room:" + r1,
                                        json.dumps(message(None, "s1", a, "via pubsub"))), 1)
        self.r.command("XADD", "rooms", "*", "event",
                       json.dumps(message(r2, "s2", a, "via streams")))
        self.expect(b, note(r1, "s1", a, "via pubsub", badge=1))
        self.expect(b, note(r2, "s2", a, "via streams", badge=2))
        self.check()
        self.assertFalse(self.daemon.secret_in_log(self.redis_password),
                         "the redis password is in the daemon's log")

    def test_wrong_password_is_refused_then_a_fixed_file_connects(self):
        path = os.path.join(_TMP, "redis-password-wrong-%s" % self.u)
        wrong = "wrong-" + os.urandom(8).hex()
        with open(path, "w") as f:
            f.write(wrong + "\n")
        d = self.make_daemon({"redis": {"password_file": path}})
        self.addCleanup(d.cleanup)
        d.start()
        d.wait_for_log(lambda f: f.get("msg") == "redis authentication failed" and
                       f.get("source") == "redis-pubsub")
        with open(path + ".new", "w") as f:
            f.write(self.redis_password + "\n")
        os.rename(path + ".new", path)
        for source in ("redis-pubsub", "redis-streams"):
            d.wait_for_log(lambda f, s=source: f.get("msg") == "redis connection restored"
                           and f.get("source") == s)
        for secret in (wrong, self.redis_password):
            self.assertFalse(d.secret_in_log(secret), "a password is in the daemon's log")


# ---- Redis Streams ----------------------------------------------------------------------------

class StreamsCase(SourcesCase):

    redis = True
    waits = ("redis-streams",)
    consumer = "test-consumer"

    @classmethod
    def config(cls):
        return {"streams": {"enabled": "yes", "keys": "rooms", "consumer": cls.consumer,
                            "block": "100ms"}}

    def xadd(self, *events):
        """XADD each event to rooms in one pipeline; returns the entry ids."""
        return self.r.pipeline([("XADD", "rooms", "*", "event",
                                 e if isinstance(e, str) else json.dumps(e))
                                for e in events])

    def xpending(self):
        """[count, first id, last id, [[consumer, count], ...]] of the group."""
        return self.r.command("XPENDING", "rooms", "pushrelay")

    def wait_no_pending(self, daemon=None, timeout=10.0):
        self.wait_for("XPENDING 0", lambda: self.xpending()[0] == 0, timeout=timeout,
                      daemon=daemon)


@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestStreams(StreamsCase):

    def test_messages_notify_away_members_and_entries_are_acknowledged(self):
        room = self.id_("support")
        customer, agent, other = self.id_("customer"), self.id_("agent"), self.id_("other")
        self.register(customer, "apns")
        self.register(customer, "fcm")
        self.register(agent, "fcm")
        self.register(other, "apns")
        self.join(room, customer, agent, other)
        self.xadd(presence("enter", room, agent, "desk"), presence("enter", room, other),
                  message(room, "m1", customer, "Hello?"))
        self.check()
        self.xadd(presence("leave", room, other),
                  message(room, "m2", agent, "Hi, how can I help?"))
        self.expect(customer, note(room, "m2", agent, "Hi, how can I help?", badge=1))
        self.expect(other, note(room, "m2", agent, "Hi, how can I help?", badge=1))
        self.check()
        self.wait_no_pending()
        self.assertEqual(metric(self.daemon, "pushrelay_source_pending_events",
                                source="redis-streams"), 0)

    def test_entry_is_pending_until_its_notifications_are_answered(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "fcm")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        self.apns.add_rule(delay_ms=1000)
        self.fcm.add_rule(delay_ms=1000)
        [entry_id] = self.xadd(message(room, "d1", a, "slow"))
        self.expect(b, note(room, "d1", a, "slow", badge=1))
        b_devices = [dev["device_id"] for dev in self.by_client[b]]
        got = self.wait_for("b's two requests at the mocks", lambda: (
            lambda g: g if all(g[d] for d in b_devices) else None)(self.received()))
        last_request_ms = max(got[d][0]["time_ms"] for d in b_devices)
        # Sent, not answered: the entry is still pending, in this consumer.
        pending = self.xpending()
        self.assertEqual(pending, [1, entry_id, entry_id, [[self.consumer, "1"]]])
        while harness.now_ms() < last_request_ms + 700:
            self.assertEqual(self.xpending()[0], 1, "acknowledged before the answers")
            time.sleep(0.05)
        self.wait_no_pending()
        self.assertGreaterEqual(harness.now_ms(), last_request_ms + 1000 - 10)
        self.check()

    def test_entries_without_a_valid_event_are_skipped_and_acknowledged(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.join(room, a, b)
        skipped = metric(self.daemon, "pushrelay_events_skipped_total",
                         source="redis-streams", reason="malformed")
        self.r.command("XADD", "rooms", "*", "text", "no event field")
        self.xadd("{not json", message(None, "n1", a, "no room"),
                  message(room, "n2", a, "fine"))
        self.expect(b, note(room, "n2", a, "fine", badge=1))
        self.check()
        self.wait_no_pending()
        self.assertEqual(metric(self.daemon, "pushrelay_events_skipped_total",
                                source="redis-streams", reason="malformed"), skipped + 3)


@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestStreamsCrash(StreamsCase):

    RESEND_WINDOW_MS = 20
    DELAY_MS = 150      # the mocks' answers: notifications are in flight at the kill

    def crash_setup(self, rooms, per_room, daemon=None):
        """rooms rooms, each with a sender and one away member with one device.

        Returns the plan: [(room, sender, device, [(message id, text)])]."""
        plan = []
        for i in range(rooms):
            room = self.id_("c%02d" % i)
            sender, member = self.id_("s%02d" % i), self.id_("m%02d" % i)
            dev = self.register(member, "apns" if i % 2 == 0 else "fcm", daemon=daemon)
            self.join(room, sender, member, daemon=daemon)
            msgs = [("x%03d" % j, "message %d of %s" % (j, room)) for j in range(per_room)]
            plan.append((room, sender, dev, msgs))
        return plan

    def answered_counts(self, kill_ms):
        """(token, message id) -> requests the mocks answered 200, and how many were cut
        off: a mock records a request (with its status) when it arrives and answers it
        DELAY_MS later, so one whose answer was due after the kill was never answered:
        the connection died with the daemon."""
        counts, cut = {}, 0
        for r in self.apns.requests() + self.fcm.requests():
            token = record_token(r)
            if token is None or r["status"] != 200:
                continue
            if kill_ms is not None and r["time_ms"] <= kill_ms < r["time_ms"] + self.DELAY_MS:
                cut += 1
                continue
            key = (token, record_message_id(r))
            counts[key] = counts.get(key, 0) + 1
        return counts, cut

    def test_kill_9_in_a_burst_then_restart_notifies_every_message_exactly_once(self):
        rooms, per_room = 10, 20
        plan = self.crash_setup(rooms, per_room)
        sender_of = {room: sender for room, sender, _, _ in plan}
        want = {(dev["token"], mid): text for _, _, dev, msgs in plan for mid, text in msgs}
        for mock in (self.apns, self.fcm):
            mock.add_rule(delay_ms=self.DELAY_MS)
        # The burst: 10 entries every 25 ms, the messages of the rooms interleaved. kill -9
        # once 40 notifications have been answered: others are in flight then, others
        # read and not sent yet, and the rest of the burst is still to come.
        entries = [message(room, msgs[j][0], sender, msgs[j][1])
                   for j in range(per_room) for room, sender, _, msgs in plan]
        kill_ms = None
        for start in range(0, len(entries), 10):
            if kill_ms is None:
                now = harness.now_ms()
                answered = sum(1 for records in self.received().values() for r in records
                               if r["time_ms"] + self.DELAY_MS < now)
                if answered >= 40:
                    kill_ms = harness.now_ms()
                    self.daemon.kill9()
                    left = len(entries) - start
            self.xadd(*entries[start:start + 10])
            time.sleep(0.025)
        self.assertIsNotNone(kill_ms, "the burst ended before 40 notifications were answered")
        self.assertGreater(left, 0)
        pending_at_restart = self.xpending()[0]
        self.assertGreater(pending_at_restart, 0, "nothing was left pending by the kill")
        self.start_and_wait(self.daemon)

        def all_there():
            counts, _ = self.answered_counts(kill_ms)
            return all(counts.get(k) for k in want)
        self.wait_for("every message notified after the restart", all_there, timeout=20)
        time.sleep(SETTLE)
        self.wait_no_pending()
        counts, cut = self.answered_counts(kill_ms)
        tokens = {dev["token"] for _, _, dev, _ in plan}
        extra = sorted(k for k in counts if k not in want and k[0] in tokens)
        # For each duplicate: how long before the kill its first copy was answered.
        first = {}
        for r in sorted(self.apns.requests() + self.fcm.requests(), key=lambda r: r["seq"]):
            token = record_token(r)
            if token in tokens:
                first.setdefault((token, record_message_id(r)), r["time_ms"])
        twice = sorted((k[1], n, kill_ms - (first[k] + self.DELAY_MS))
                       for k, n in counts.items() if k in want and n > 1)
        detail = ("kill -9 %d ms after the first answer, %d entries of the burst still to "
                  "come; %d requests cut off by the kill (not answered); %d entries pending "
                  "at the restart; duplicates as (message id, copies, ms from the first "
                  "copy's answer to the kill): %r" % (
                      kill_ms - min(first.values()) - self.DELAY_MS, left, cut,
                      pending_at_restart, twice))
        self.assertEqual(extra, [], detail)
        # At least once, and twice only inside the window no daemon can close: a
        # notification APNs/FCM accepted in the last moments before kill -9, whose
        # XACK (sent as soon as the answer came) Redis had not processed yet. Any other
        # duplicate fails the test; these are printed.
        late = [d for d in twice if d[2] <= self.RESEND_WINDOW_MS]
        if late:
            print("# resent after the kill, answered %s ms before it: %r"
                  % (sorted({d[2] for d in late}), late))
        self.assertEqual([d for d in twice if d[2] > self.RESEND_WINDOW_MS], [], detail)
        # Each notification carries its own message.
        for r in self.apns.requests() + self.fcm.requests():
            token = record_token(r)
            if token not in tokens:
                continue
            body = json.loads(r["body"])
            if "aps" in body:
                room, text = body["room"], body["aps"]["alert"]["body"]
            else:
                room, text = body["message"]["data"]["room"], \
                    body["message"]["notification"]["body"]
            self.assertEqual(text, "%s: %s" % (sender_of[room],
                                               want[(token, record_message_id(r))]))

    def test_second_consumer_takes_over_entries_a_killed_consumer_left_pending(self):
        self.daemon.stop()              # the class's consumer would share the work
        a = self.make_daemon({"streams": {"consumer": "consumer-a"}})
        self.addCleanup(a.cleanup)
        self.start_and_wait(a)
        # b: its own store, prepared before its stream source starts.
        b = self.make_daemon({"streams": {"enabled": "no", "consumer": "consumer-b",
                                          "claim_idle": "1s"}})
        self.addCleanup(b.cleanup)
        b.start()
        plan = self.crash_setup(4, 5, daemon=a)
        for room, sender, dev, _ in plan:
            self.register(dev["client_id"], dev["platform"], daemon=b, token=dev["token"],
                          track=False)
            self.join(room, sender, dev["client_id"], daemon=b)
        b.stop()
        b.write_config(b.config_text({"streams": {"enabled": "yes"}}))
        for mock in (self.apns, self.fcm):
            mock.add_rule(delay_ms=30000)
        self.xadd(*[message(room, mid, sender, text) for room, sender, _, msgs in plan
                    for mid, text in msgs])
        total = sum(len(msgs) for _, _, _, msgs in plan)
        # a has sent them all and waits for the answers: all pending, in consumer-a.
        self.wait_for("a's requests at the mocks", lambda: sum(
            len(v) for v in self.received().values()) >= total, daemon=a)
        pending = self.xpending()
        self.assertEqual((pending[0], pending[3]), (total, [["consumer-a", str(total)]]))
        a.kill9()
        # The connections of a are gone with it, and so the answers it waited for.
        for mock in (self.apns, self.fcm):
            mock.clear_rules()
        self.wait_for("a's connections closed", lambda: all(
            m.stats()["connections_live"] == 0 for m in (self.apns, self.fcm)), daemon=a)
        for mock in (self.apns, self.fcm):
            mock.clear_requests()
        offset = b.log_offset()
        self.start_and_wait(b)
        for room, sender, dev, msgs in plan:
            for i, (mid, text) in enumerate(msgs):
                self.expect(dev["client_id"], note(room, mid, sender, text, badge=i + 1))
        self.check(daemon=b, timeout=15)
        line = b.wait_for_log(lambda f: f.get("msg") ==
                              "took over stream entries left pending by another consumer",
                              since=offset)
        self.assertEqual(line.get("source"), "redis-streams")
        self.wait_no_pending(daemon=b)
        consumers = {c["name"]: c for c in (
            dict(zip(x[::2], x[1::2])) for x in self.r.command("XINFO", "CONSUMERS", "rooms",
                                                              "pushrelay"))}
        self.assertEqual(consumers["consumer-a"]["pending"], 0)


@unittest.skipUnless(HAVE_REDIS, NO_REDIS)
class TestStreamsBackpressure(StreamsCase):

    @classmethod
    def config(cls):
        config = super().config()
        config["rooms"] = {"queue_size": "100"}
        return config

    def test_full_router_pauses_reading_and_loses_nothing(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "fcm")
        dev = self.register(b, "apns")
        self.join(room, a, b)
        self.apns.add_rule(delay_ms=300)
        ids = ["bp%03d" % i for i in range(500)]
        self.xadd(*[message(room, m, a, "text " + m) for m in ids])
        paused_seen = False
        deadline = time.monotonic() + 30
        while len(self.received()[dev["device_id"]]) < len(ids):
            if metric(self.daemon, "pushrelay_source_paused", source="redis-streams") == 1:
                paused_seen = True
            self.assertLess(time.monotonic(), deadline, "not all delivered:\n%s"
                            % self.daemon.log_text(self.log_start)[-4000:])
            time.sleep(0.02)
        self.assertTrue(paused_seen, "pushrelay_source_paused{source=\"redis-streams\"} "
                        "was never 1 with 500 entries and queue_size = 100")
        for i, m in enumerate(ids):
            self.expect(b, note(room, m, a, "text " + m, badge=i + 1))
        self.check(timeout=20)
        self.wait_no_pending()
        self.assertEqual(metric(self.daemon, "pushrelay_source_paused",
                                source="redis-streams"), 0)


# ---- Ably webhooks ----------------------------------------------------------------------------

def raw_message(mid, client, data, name="msg", connection=None, **extra):
    """A raw Ably message as a webhook carries it."""
    m = {"id": mid, "clientId": client, "connectionId": connection or "conn-" + client,
         "timestamp": harness.now_ms(), "name": name, "data": data}
    m.update(extra)
    return m


def raw_presence(client, action, connection=None):
    """A raw Ably presence message: action 2 enter, 3 leave, 4 update."""
    return {"id": "p-%s-%s" % (client, uid()), "clientId": client,
            "connectionId": connection or "conn-" + client, "timestamp": harness.now_ms(),
            "action": action, "data": ""}


def batched_item(source, channel, messages=None, presence_=None):
    data = {"channelId": channel, "site": "eu-west-1-A"}
    if messages is not None:
        data["messages"] = messages
    if presence_ is not None:
        data["presence"] = presence_
    return {"webhookId": "wh-1", "source": source, "serial": "s-" + uid(),
            "timestamp": harness.now_ms(),
            "name": "presence.message" if presence_ is not None else "channel.message",
            "data": data}


def enveloped(source, channel, messages=None, presence_=None):
    body = {"source": source, "appId": "app", "channel": channel, "site": "eu-west-1-A",
            "ruleId": "rule-1", "timestamp": harness.now_ms()}
    if messages is not None:
        body["messages"] = messages
    if presence_ is not None:
        body["presence"] = presence_
    return body


class AblyCase(SourcesCase):

    @classmethod
    def config(cls):
        path = write_ably_keys(os.path.join(_TMP, "ably-keys-%s" % cls.__name__),
                               "# Ably keys\n")
        return {"ably": {"enabled": "yes", "keys_file": path}}

    def ably(self, body, headers=None, key=harness._DEFAULT, signed=True,
             content_type="application/json"):
        """POST /v1/ingest/ably; body: a JSON value or raw bytes. Signed with app.key1
        (and no API key) unless signed is False (then the API key, by default)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        hdrs = {"Content-Type": content_type, "X-Ably-Version": "1.2"}
        if signed:
            hdrs.update({"X-Ably-Key": ABLY_KEY, "X-Ably-Signature": sign(raw)})
            if key is harness._DEFAULT:
                key = None
        hdrs.update(headers or {})
        return self.daemon.request("POST", "/v1/ingest/ably", raw_body=raw, headers=hdrs,
                                   key=key)

    def accepted(self, result, count, skipped=None):
        st, headers, body, raw = result
        self.assertEqual(st, 202, raw)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"))
        self.assertEqual(body, {"accepted": count, "skipped": skipped or {}}, raw)


class TestAbly(AblyCase):

    def test_batched_messages_and_presence_notify_only_the_away_customer(self):
        room = self.id_("support")
        customer, agent = self.id_("customer"), self.id_("agent")
        self.register(customer, "apns")
        self.register(customer, "fcm")
        self.register(agent, "apns")
        self.join(room, customer, agent)
        self.accepted(self.ably({"items": [
            batched_item("channel.presence", room, presence_=[
                raw_presence(agent, 2), raw_presence(customer, 2),
                raw_presence(customer, 3)]),
            batched_item("channel.message", room, messages=[
                raw_message("m1", customer, "Where is my parcel?"),
                raw_message("m2", agent, "It left the depot this morning.")]),
        ]}), 5)
        self.expect(customer, note(room, "m2", agent, "It left the depot this morning.",
                                   badge=1))
        self.check()

    def test_a_delivery_over_its_item_limit_is_refused_whole(self):
        room = self.id_("r")
        client = self.id_("c")
        items = [batched_item("channel.presence", room, presence_=[raw_presence(client, 2)])
                 for _ in range(1001)]
        self.assertErrorBody(self.ably({"items": items}), 413, "payload_too_large",
                             "items: at most 1000 items in one delivery")
        # At the limit, it is taken.
        self.accepted(self.ably({"items": items[:1000]}), 1000)

    def test_enveloped_messages_and_presence_with_the_wrong_source(self):
        room = self.id_("r")
        a, b, c = self.id_("a"), self.id_("b"), self.id_("c")
        self.register(a, "fcm")
        self.register(b, "apns")
        self.register(c, "fcm")
        self.join(room, a, b, c)
        # Ably's own example: presence[] under "source": "channel.message".
        self.accepted(self.ably(enveloped("channel.message", room,
                                          presence_=[raw_presence(b, 2, "b-1")])), 1)
        self.accepted(self.ably(enveloped("channel.message", room, messages=[
            raw_message("e1", a, "first")])), 1)
        self.expect(c, note(room, "e1", a, "first", badge=1))
        self.check()
        self.accepted(self.ably(enveloped("channel.message", room,
                                          presence_=[raw_presence(b, 3, "b-1")])), 1)
        self.accepted(self.ably(enveloped("channel.message", room, messages=[
            raw_message("e2", a, {"text": "second"})])), 1)
        self.expect(b, note(room, "e2", a, "second", badge=1))
        self.expect(c, note(room, "e2", a, "second", badge=2))
        self.check()

    def test_non_enveloped_messages_take_their_metadata_from_the_headers(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)

        def headers(mid):
            return {"X-Ably-Envelope-Appid": "app", "X-Ably-Envelope-Channel": room,
                    "X-Ably-Envelope-Rule-Id": "rule-2",
                    "X-Ably-Envelope-Site": "eu-west-1-A",
                    "X-Ably-Envelope-Source": "channel.message",
                    "X-Ably-Message-Client-Id": a, "X-Ably-Message-Connection-Id": "conn-a",
                    "X-Ably-Message-Id": mid,
                    "X-Ably-Message-Timestamp": str(harness.now_ms())}
        self.accepted(self.ably("Are you there?".encode(), headers=headers("n1"),
                                content_type="text/plain"), 1)
        self.expect(b, note(room, "n1", a, "Are you there?", badge=1))
        self.check()
        self.accepted(self.ably({"text": "Hello from JSON"}, headers=headers("n2")), 1)
        self.expect(b, note(room, "n2", a, "Hello from JSON", badge=2))
        self.check()

    def test_encoded_data_is_decoded_and_encrypted_data_skipped(self):
        r1, r2, r3 = self.id_("r1"), self.id_("r2"), self.id_("r3")
        a, b, c = self.id_("a"), self.id_("b"), self.id_("c")
        self.register(a, "fcm")
        self.register(b, "apns")
        self.register(c, "fcm")
        self.join(r1, a, b)
        self.join(r2, a, c)
        self.join(r3, a, b, c)
        as_json = base64.b64encode(json.dumps({"text": "décodé from json"}).encode()).decode()
        as_utf8 = base64.b64encode("ünïcode text ✓".encode("utf-8")).decode()
        secret = base64.b64encode(os.urandom(48)).decode()
        self.accepted(self.ably({"items": [
            batched_item("channel.message", r1, messages=[
                raw_message("j1", a, as_json, encoding="json/base64")]),
            batched_item("channel.message", r2, messages=[
                raw_message("u1", a, as_utf8, encoding="utf-8/base64")]),
            batched_item("channel.message", r3, messages=[
                raw_message("x1", a, secret, encoding="utf-8/cipher+aes-128-cbc/base64")]),
        ]}), 2, {"encrypted": 1})
        self.expect(b, note(r1, "j1", a, "décodé from json", badge=1))
        self.expect(c, note(r2, "u1", a, "ünïcode text ✓", badge=1))
        self.check()

    def test_msgpack_is_refused_with_415(self):
        msgpack = b"\x81\xa5items\x90"      # {"items": []}
        result = self.ably(msgpack, content_type="application/x-msgpack", signed=False)
        self.assertErrorBody(result, 415, "unsupported_media_type",
                             "msgpack is not supported; configure the rule for JSON")

    def test_signatures_and_the_api_key(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)

        def body(mid):
            return json.dumps(enveloped("channel.message", room, messages=[
                raw_message(mid, a, "text " + mid)])).encode()
        with self.subTest("correct signature, no API key"):
            raw = body("g1")
            self.accepted(self.daemon.request(
                "POST", "/v1/ingest/ably", raw_body=raw, key=None,
                headers={"X-Ably-Key": ABLY_KEY, "X-Ably-Signature": sign(raw)}), 1)
            self.expect(b, note(room, "g1", a, "text g1", badge=1))
        with self.subTest("wrong signature"):
            raw = body("g2")
            self.assertErrorBody(self.daemon.request(
                "POST", "/v1/ingest/ably", raw_body=raw, key=None,
                headers={"X-Ably-Key": ABLY_KEY, "X-Ably-Signature": sign(raw, "secret2")}),
                401, "unauthorized", "X-Ably-Signature does not match the body (key %s)"
                % ABLY_KEY)
        with self.subTest("signature of another body"):
            raw = body("g3")
            self.assertErrorBody(self.daemon.request(
                "POST", "/v1/ingest/ably", raw_body=raw, key=None,
                headers={"X-Ably-Key": ABLY_KEY, "X-Ably-Signature": sign(raw + b" ")}),
                401, "unauthorized", "X-Ably-Signature does not match the body (key %s)"
                % ABLY_KEY)
        with self.subTest("unknown key"):
            raw = body("g4")
            self.assertErrorBody(self.daemon.request(
                "POST", "/v1/ingest/ably", raw_body=raw, key=None,
                headers={"X-Ably-Key": "app.key2", "X-Ably-Signature": sign(raw)}),
                401, "unauthorized", "X-Ably-Key names an unknown key: app.key2")
        with self.subTest("no signature, a valid API key"):
            raw = body("g5")
            self.accepted(self.daemon.request("POST", "/v1/ingest/ably", raw_body=raw), 1)
            self.expect(b, note(room, "g5", a, "text g5", badge=2))
        with self.subTest("neither"):
            raw = body("g6")
            result = self.daemon.request("POST", "/v1/ingest/ably", raw_body=raw, key=None)
            self.assertUnauthorized(result)
            self.assertErrorBody(result, 401, "unauthorized",
                                 "missing X-Ably-Signature (or an API key)")
        self.check()


class TestAblyChat(AblyCase):
    """Coalescing on, so that edits and deletes find the notification not sent yet."""

    WINDOW = 0.5
    settle = WINDOW + SETTLE

    @classmethod
    def config(cls):
        config = super().config()
        config["rooms"] = {"coalesce_window": "%dms" % (cls.WINDOW * 1000)}
        return config

    def test_chat_room_messages_are_created_updated_and_deleted(self):
        room = "room-1"                 # the only test on this daemon that uses it
        channel = room + "::$chat"
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        t0 = harness.now_ms()
        s1, s2 = "01726232498871-000@cbfkKvEYgBhDaZ%s:000" % self.u, \
            "01726232498872-000@cbfkKvEYgBhDaZ%s:000" % self.u

        def chat(serial, action, text, version=None):
            m = raw_message("ably-id-" + uid(), a, {"text": text, "metadata": {}},
                            name="chat.message", serial=serial, action=action,
                            extras={"headers": {}})
            if version is not None:
                m["version"] = {"serial": version, "timestamp": harness.now_ms()}
            return m
        self.accepted(self.ably(enveloped("channel.message", channel, messages=[
            chat(s1, 0, "helo"), chat(s2, 0, "oops, wrong room"),
            raw_message("t-" + uid(), a, None, name="typing.started"),
        ])), 2, {"chat_other": 1})
        time.sleep(0.05)
        self.accepted(self.ably(enveloped("channel.message", channel, messages=[
            chat(s1, 1, "hello", version=s1 + "-v2"),
            chat(s2, 2, "", version=s2 + "-v2"),
        ])), 2)
        # s2 deleted before it left; s1 sent with its new text. Both counted as unread.
        self.expect(b, note(room, s1, a, "hello", badge=2))
        got = self.check()
        for records in got.values():
            for r in records:
                self.assertGreaterEqual(r["time_ms"] - t0, self.WINDOW * 1000 - 10)


if __name__ == "__main__":
    harness.main()
