"""Room events end to end: POST /v1/events through the real pushrelayd to mock APNs and FCM.

Devices and memberships are registered through the API, room events are posted to
POST /v1/events, and each test asserts exactly which devices the mocks received
notifications for, with their exact bodies (docs/events.md, src/route/notify_text.c), and that
nothing else arrived: after the last expected notification it waits a bounded time (the
coalescing window or the grace period, plus 300 ms) and checks every device of the test.

Ids are unique per test, so the tests of a class share one daemon and its mocks.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import (SETTLE, NotificationCase, apns_expected, collapse_id_of, delete, enter,
                      metric,  # noqa: E402
                      fcm_expected, leave, member_join, member_leave, message, note, read,
                      sync, update)
from harness import uid  # noqa: E402

# Timers run on libevent's cached clock and the mocks record whole milliseconds: a timer
# may end a few milliseconds before its full duration as measured from this process.
TIMER_SLACK_MS = 10
BUSY = "too many events are waiting; retry later"


def setUpModule():
    RoomsCase.certs, RoomsCase.tmp = mockctl.module_certs("pushrelay-rooms-")


def rfc3339(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


# ---- a daemon with mocks ------------------------------------------------------------

class RoomsCase(NotificationCase):
    """NotificationCase posting room events to POST /v1/events.

    rooms/events: the class's [rooms] and [events] options over the defaults.
    """

    rooms = {}
    events = {}

    @classmethod
    def config(cls):
        config = {"rooms": dict(cls.rooms)}
        if cls.events:
            config["events"] = dict(cls.events)
        return config

    def register(self, client, platform, count=1):
        """Register count new devices of a platform for client; returns them."""
        return [super(RoomsCase, self).register(client, platform) for _ in range(count)]

    def prefs(self, room, client, body):
        st, _, got, raw = self.daemon.request(
            "PUT", "/v1/rooms/%s/members/%s/prefs" % (harness.quote(room), harness.quote(client)),
            body=body)
        self.assertEqual(st, 200, raw)
        return got

    def post_raw(self, body, **kw):
        return self.daemon.request("POST", "/v1/events", body=body, **kw)

    def post(self, *events, skipped=()):
        """POST /v1/events; it must answer 202 with every event but the skipped accepted."""
        st, headers, body, raw = self.post_raw({"events": list(events)})
        self.assertEqual(st, 202, raw)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"))
        self.assertEqual(body, {"accepted": len(events) - len(skipped),
                                "skipped": list(skipped)}, raw)
        return body


# ---- routing: who is notified ------------------------------------------------------------

class TestRouting(RoomsCase):
    """coalesce_window = 0 (each message notifies at once), presence_grace = 0."""

    def test_registry_changes_reach_the_next_message_of_a_known_room(self):
        # The router keeps a room's members and devices in memory after a message:
        # a device registered or a member removed through the API must count at once.
        room = self.id_("cache")
        a, b, c = self.id_("a"), self.id_("b"), self.id_("c")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(c, "apns")
        self.join(room, a, b, c)
        self.post(message(room, "c1", a, "first"))
        self.expect(b, note(room, "c1", a, "first", badge=1))
        self.expect(c, note(room, "c1", a, "first", badge=1))
        self.check()
        self.register(b, "fcm")
        st, _, _, raw = self.daemon.request(
            "DELETE", "/v1/rooms/%s/members/%s" % (harness.quote(room), harness.quote(c)))
        self.assertEqual(st, 204, raw)
        self.post(message(room, "c2", a, "second"))
        self.expect(b, note(room, "c2", a, "second", badge=2))
        self.check()

    def test_support_chat_notifies_only_the_away_customer_of_the_agents_message(self):
        room = self.id_("support")
        customer, agent = self.id_("customer"), self.id_("agent")
        self.register(customer, "apns")
        self.register(customer, "fcm")
        self.register(agent, "apns")
        self.register(agent, "fcm")
        self.join(room, customer, agent)
        self.post(enter(room, agent, "agent-desk"),
                  enter(room, customer, "cust-phone"), leave(room, customer, "cust-phone"),
                  message(room, "m1", customer, "Where is my parcel?", room_name="Support",
                          sender_name="Carol"))
        self.post(message(room, "m2", agent, "It left the depot this morning.",
                          room_name="Support", sender_name="Agent Smith"))
        self.expect(customer, note(room, "m2", agent, "It left the depot this morning.",
                                   badge=1, room_name="Support", sender_name="Agent Smith"))
        self.check()

    def test_group_of_five_notifies_exactly_the_away_members_devices(self):
        room = self.id_("group")
        a, b, c, d, e = (self.id_(n) for n in ("ann", "bob", "cid", "dee", "eve"))
        outsider = self.id_("out")
        self.register(a, "apns")
        self.register(a, "fcm")
        self.register(b, "apns", 2)
        self.register(b, "fcm")
        self.register(c, "apns")
        self.register(d, "fcm", 2)
        self.register(e, "apns")
        self.register(e, "fcm")
        self.register(outsider, "apns")
        self.register(outsider, "fcm")
        self.join(room, a, b, c, d, e)
        self.post(enter(room, b, "b-laptop"), enter(room, b, "b-phone"),
                  enter(room, d), leave(room, d),
                  enter(room, e, "e-1"))
        self.post(message(room, "g1", a, "hello all"))
        for client in (c, d):
            self.expect(client, note(room, "g1", a, "hello all", badge=1))
        self.check()

    def test_sender_is_never_notified_and_present_members_only_after_they_leave(self):
        room = self.id_("r")
        sender, member = self.id_("sender"), self.id_("member")
        self.register(sender, "apns")
        self.register(sender, "fcm")
        self.register(member, "apns")
        self.register(member, "fcm")
        self.join(room, sender, member)
        # The sender's presence is unknown (away); the member is present.
        self.post(enter(room, member))
        self.post(message(room, "s1", sender, "while you are here"))
        self.post(leave(room, member))
        self.post(message(room, "s2", sender, "now that you left"))
        self.expect(member, note(room, "s2", sender, "now that you left", badge=1))
        self.check()

    def test_client_on_two_connections_is_away_only_when_both_left(self):
        room = self.id_("r")
        a, b, witness = self.id_("a"), self.id_("b"), self.id_("w")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.register(witness, "fcm")
        self.join(room, a, b, witness)
        self.post(enter(room, b, "tab-1"), enter(room, b, "tab-2"), leave(room, b, "tab-1"))
        self.post(message(room, "c1", a, "one left"))
        self.expect(witness, note(room, "c1", a, "one left", badge=1))
        self.check()
        self.post(leave(room, b, "tab-2"))
        self.post(message(room, "c2", a, "both left"))
        self.expect(witness, note(room, "c2", a, "both left", badge=2))
        self.expect(b, note(room, "c2", a, "both left", badge=1))
        self.check()

    def test_presence_sync_replaces_the_rooms_presence(self):
        room = self.id_("r")
        a, b, c, d = (self.id_(n) for n in "abcd")
        for client in (a, b, c, d):
            self.register(client, "apns")
        self.register(b, "fcm")
        self.join(room, a, b, c, d)
        self.post(enter(room, b, "b-conn"))
        self.post(sync(room, [c, d]))
        self.post(message(room, "p1", a, "b is gone"))
        self.expect(b, note(room, "p1", a, "b is gone", badge=1))
        self.check()
        self.post(sync(room, [b]))
        self.post(message(room, "p2", a, "c and d are gone"))
        self.expect(c, note(room, "p2", a, "c and d are gone", badge=1))
        self.expect(d, note(room, "p2", a, "c and d are gone", badge=1))
        self.check()
        # An empty sync: nobody is present any more.
        self.post(sync(room, []))
        self.post(message(room, "p3", a, "everyone is gone"))
        self.expect(b, note(room, "p3", a, "everyone is gone", badge=2))
        self.expect(c, note(room, "p3", a, "everyone is gone", badge=2))
        self.expect(d, note(room, "p3", a, "everyone is gone", badge=2))
        self.check()

    def test_muted_members_and_unmentioned_mentions_only_members_are_not_notified(self):
        room = self.id_("r")
        a = self.id_("a")
        muted, was_muted = self.id_("muted"), self.id_("was-muted")
        mentioned, unmentioned = self.id_("ment"), self.id_("unment")
        for client in (a, muted, was_muted, mentioned, unmentioned):
            self.register(client, "apns")
            self.register(client, "fcm")
        self.join(room, a, muted, was_muted, mentioned, unmentioned)
        now = time.time()
        self.prefs(room, muted, {"muted_until": rfc3339(now + 3600)})
        self.prefs(room, was_muted, {"muted_until": rfc3339(now - 3600)})
        self.prefs(room, mentioned, {"mentions_only": True})
        self.prefs(room, unmentioned, {"mentions_only": True})
        self.post(message(room, "q1", a, "@ment look", mentions=[mentioned]))
        for client in (was_muted, mentioned):
            self.expect(client, note(room, "q1", a, "@ment look", badge=1))
        self.check()
        # Unmuted and no longer mentions-only: notified, and the badge counts what they
        # were not notified of.
        self.prefs(room, muted, {"muted_until": None})
        self.prefs(room, unmentioned, {"mentions_only": False})
        self.post(message(room, "q2", a, "all of you"))
        for client in (muted, was_muted, unmentioned):
            self.expect(client, note(room, "q2", a, "all of you", badge=2))
        self.check()

    def test_without_coalescing_each_message_notifies_at_once(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        self.post(*(message(room, "w%d" % i, a, "text %d" % i, sender_name="Alice")
                    for i in (1, 2, 3)))
        for i in (1, 2, 3):
            self.expect(b, note(room, "w%d" % i, a, "text %d" % i, badge=i,
                                sender_name="Alice"))
        self.check()

    def test_badge_counts_unread_across_rooms_and_read_resets_a_room(self):
        r1, r2 = self.id_("r1"), self.id_("r2")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(r1, a, b)
        self.join(r2, a, b)
        steps = [((), message(r1, "x1", a, "one"), note(r1, "x1", a, "one", badge=1)),
                 ((), message(r2, "x2", a, "two"), note(r2, "x2", a, "two", badge=2)),
                 ((), message(r1, "x3", a, "three"), note(r1, "x3", a, "three", badge=3)),
                 # r1 read: only r2's message is unread.
                 ((read(r1, b, "x3"),), message(r2, "x4", a, "four"),
                  note(r2, "x4", a, "four", badge=2)),
                 ((read(r2, b, "x4"),), message(r1, "x5", a, "five"),
                  note(r1, "x5", a, "five", badge=1))]
        for before, event, n in steps:
            self.post(*before, event)
            self.expect(b, n)
            self.check()

    def test_same_message_posted_twice_notifies_once(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        first = message(room, "d1", a, "only once")
        self.post(first, first)
        self.expect(b, note(room, "d1", a, "only once", badge=1))
        self.check()
        # Again, even with other fields changed: the id is what counts.
        self.post(message(room, "d1", a, "only once, really"))
        # The same id in another room is another message.
        other = self.id_("other")
        self.join(other, a, b)
        self.post(message(other, "d1", a, "elsewhere"))
        self.expect(b, note(other, "d1", a, "elsewhere", badge=2))
        self.check()

    def test_title_body_and_data_follow_the_message_and_its_push_overrides(self):
        room = self.id_("general")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        push = {"title": "Alice in #general", "body": "sent a photo",
                "data": {"deeplink": "chat://general/t4"},
                "apns": {"headers": {"apns-collapse-id": "photo-t4"},
                         "payload": {"aps": {"sound": "ping.aiff"}}},
                "fcm": {"android": {"collapse_key": "photo-t4"}},
                "unknown": "ignored"}
        self.post(message(room, "t1", a, "both names", room_name="General",
                          sender_name="Alice"),
                  message(room, "t2", a, "sender name", sender_name="Alice"),
                  message(room, "t3", a, "no names", ts=1795857302123),
                  message(room, "t4", a, "", room_name="General", sender_name="Alice",
                          push=push),
                  message(room, "t5", a, "skipped", push={"skip": True}),
                  message(room, "t6", a, "after the skip", ts="2026-11-28T09:15:02.123Z"))
        self.expect(b, note(room, "t1", a, "both names", badge=1, room_name="General",
                            sender_name="Alice"))
        self.expect(b, note(room, "t2", a, "sender name", badge=2, sender_name="Alice"))
        self.expect(b, note(room, "t3", a, "no names", badge=3))
        self.expect(b, note(room, "t4", a, "", badge=4, title="Alice in #general",
                            body="sent a photo", data={"deeplink": "chat://general/t4"},
                            apns=push["apns"], fcm=push["fcm"], collapse_id="photo-t4"))
        # A skipped message notifies no one and is unread for no one.
        self.expect(b, note(room, "t6", a, "after the skip", badge=5))
        self.check()

    def test_a_message_at_the_name_and_text_limits_is_notified_shortened(self):
        # "sender: text" with a 256-byte name and a 4096-byte text is longer than a
        # notification's body may be: it is cut, then shortened to fit the payload.
        room = self.id_("long")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.join(room, a, b)
        name, text = "N" * 256, "\u00e9" * 2048
        self.post(message(room, "l1", a, text, sender_name=name))
        token = self.by_client[b][0]["token"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = [r for r in self.apns.requests() if r["path"] == "/3/device/" + token]
            if got:
                break
            time.sleep(0.02)
        self.assertEqual(len(got), 1, self.daemon.log_text(self.log_start)[-3000:])
        raw = got[0]["body"]
        self.assertLessEqual(len(raw.encode()), 4096)
        alert = json.loads(raw)["aps"]["alert"]
        self.assertEqual(alert["title"], name)
        self.assertTrue(alert["body"].endswith("\u2026"), alert["body"][-20:])
        shown = alert["body"][:-1]
        self.assertGreater(len(shown), 1000)
        self.assertEqual(shown, (name + ": " + text)[:len(shown)])

    def big_room(self, size):
        """A room of a sender without devices and size members with one APNs device."""
        room, a = self.id_("big"), self.id_("a")
        members = [self.id_("m%03d" % i) for i in range(size)]
        for m in members:
            self.register(m, "apns")
        self.post(*[member_join(room, c) for c in [a] + members])
        return room, a, members

    def test_a_big_room_is_routed_over_turns_and_each_member_notified_once(self):
        # 300 members: more than the router routes in one turn of its loop (256).
        room, a, members = self.big_room(300)
        self.post(message(room, "b1", a, "to everyone"))
        for m in members:
            self.expect(m, note(room, "b1", a, "to everyone", badge=1))
        self.check(timeout=20)

    def test_a_big_room_message_deleted_while_routed_reaches_no_later_member(self):
        room, a, members = self.big_room(300)
        self.post(message(room, "d1", a, "read the room"))
        for m in members:
            self.expect(m, note(room, "d1", a, "read the room", badge=1))
        self.check(timeout=20)
        # The room's route is known now: d2 is routed at once, 256 members in this turn;
        # the deletion right behind it, in the same batch, stops it before the next.
        self.post(message(room, "d2", a, "oops"), delete(room, "d2"))
        time.sleep(1.0)
        got = {json.loads(r["body"]).get("message_id") + " " + r["path"][len("/3/device/"):]
               for r in self.apns.requests()}
        # Members in client id order: the sender and m000..m254 in the first turn.
        late = [m for m in members[255:]
                if "d2 " + self.by_client[m][0]["token"] in got]
        self.assertEqual(late, [])
        self.assertTrue(all("d1 " + self.by_client[m][0]["token"] in got for m in members))

    def test_entering_presence_or_sending_a_message_makes_a_member(self):
        room = self.id_("r")
        x, y = self.id_("x"), self.id_("y")
        before = harness.now_ms()
        self.post(enter(room, x, "x-conn"))
        self.post(message(room, "i1", y, "hello"))
        got = self.wait_members(room, [x, y])
        for m in got:
            self.assertTime(m["joined_at"], near_ms=before, slack_ms=10000)
            self.assertEqual(m, {"room_id": room, "client_id": m["client_id"],
                                 "joined_at": m["joined_at"], "muted_until": None,
                                 "mentions_only": False})
        # A leave does not end the membership.
        self.post(leave(room, x, "x-conn"))
        self.post(member_join(room, self.id_("z")))
        self.wait_members(room, [x, y, self.id_("z")])

    def test_member_join_and_leave_events_change_membership(self):
        room = self.id_("r")
        a, p, q = self.id_("a"), self.id_("p"), self.id_("q")
        self.register(a, "apns")
        self.register(p, "apns")
        self.register(q, "fcm")
        self.post(member_join(room, p), member_join(room, q), member_join(room, a))
        self.wait_members(room, [a, p, q])
        # Leaving twice, or a client who never joined: no harm.
        self.post(member_leave(room, p), member_leave(room, p),
                  member_leave(room, self.id_("never")))
        self.wait_members(room, [a, q])
        self.post(message(room, "j1", a, "who is here"))
        self.expect(q, note(room, "j1", a, "who is here", badge=1))
        self.check()
        self.post(member_join(room, p))
        self.wait_members(room, [a, p, q])

    def test_malformed_and_unknown_events_are_skipped_and_the_others_handled(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a)
        events = [
            member_join(room, b),                                                 # 0
            {"type": "message", "room": room, "id": "k0", "text": "no sender"},   # 1
            {"type": "typing.start", "room": room, "client_id": a},               # 2
            "not an object",                                                      # 3
            {"room": room, "client_id": a},                                       # 4
            message(room, "k1", a, "x", mentions="b"),                            # 5
            message(room, "k2", a, "x", ts="yesterday"),                          # 6
            {"type": "message", "id": "k3", "client_id": a, "text": "no room"},   # 7
            {"type": 5, "room": room},                                            # 8
            message(room, "k" * 129, a, "long id"),                               # 9
            message(room, "k4", a, 7),                                            # 10
            message(room, "k5", a, "x", push={"data": {"from": "x"}}),            # 11
            {"type": "read", "room": room, "client_id": b},                       # 12
            {"type": "presence.sync", "room": room, "present": "everyone"},       # 13
            message(room, "k6", a, "the good one", sender_name="Ann"),            # 14
        ]
        skipped = [
            {"index": 1, "reason": "client_id: is required"},
            {"index": 2, "reason": "unknown event type 'typing.start'"},
            {"index": 3, "reason": "an event must be a JSON object"},
            {"index": 4, "reason": "type: is required"},
            {"index": 5, "reason": "mentions: must be an array of ids"},
            {"index": 6, "reason":
             "ts: must be milliseconds since the epoch or an RFC 3339 time"},
            {"index": 7, "reason": "room: is required"},
            {"index": 8, "reason": "type: must be a string"},
            {"index": 9, "reason": "id: must be at most 128 bytes"},
            {"index": 10, "reason": "text: must be a string"},
            {"index": 11, "reason": "push.data.from: is a reserved key"},
            {"index": 12, "reason": "up_to: is required"},
            {"index": 13, "reason": "present: must be an array of client ids"},
        ]
        self.post(*events, skipped=skipped)
        self.expect(b, note(room, "k6", a, "the good one", badge=1, sender_name="Ann"))
        self.check()
        self.wait_members(room, [a, b])
        line = self.daemon.wait_for_log(lambda x: x.get("msg") == "malformed events skipped",
                                        since=self.log_start)
        self.assertEqual((line.get("source"), line.get("count"), line.get("first")),
                         ("http", "13", "client_id: is required"))

    def test_events_over_their_list_limits_are_skipped_naming_the_limit(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.join(room, a, b)
        events = [
            {"type": "presence.sync", "room": room,
             "present": ["c%d" % i for i in range(10001)]},                      # 0
            message(room, "l1", a, "x", mentions=["m%d" % i for i in range(1001)]),  # 1
            message(room, "l2", a, "x",
                    push={"data": {"k%d" % i: "v" for i in range(101)}}),       # 2
            message(room, "l3", a, "x", push={"fcm": {"k": "v" * 4096}}),       # 3
            message(room, "l4", a, "within every limit"),                       # 4
        ]
        self.post(*events, skipped=[
            {"index": 0, "reason": "present: must have at most 10000 client ids"},
            {"index": 1, "reason": "mentions: must have at most 1000 ids"},
            {"index": 2, "reason": "push.data: must have at most 100 members"},
            {"index": 3, "reason": "push.fcm: must be at most 4096 bytes as JSON"},
        ])
        self.expect(b, note(room, "l4", a, "within every limit", badge=1))
        self.check()


class TestNoImplicitMembership(RoomsCase):

    rooms = {"implicit_membership": "no"}

    def test_without_implicit_membership_presence_and_messages_make_no_members(self):
        room = self.id_("r")
        x, y, z = self.id_("x"), self.id_("y"), self.id_("z")
        self.register(x, "apns")
        self.register(y, "apns")
        self.register(z, "apns")
        self.register(z, "fcm")
        self.post(enter(room, x), leave(room, x), message(room, "n1", y, "hello"),
                  member_join(room, z))
        self.wait_members(room, [z])
        self.post(message(room, "n2", y, "hello z"))
        # n1 was routed before z joined: z gets n2 only, and only z is a member.
        self.expect(z, note(room, "n2", y, "hello z", badge=1))
        self.check()
        self.assertEqual([m["client_id"] for m in self.members(room)], [z])


# ---- the grace period ------------------------------------------------------------------

GRACE = 0.4


class TestRateLimit(RoomsCase):

    rooms = {"recipient_rate_limit": "2"}

    def test_a_recipient_gets_at_most_the_limit_per_minute_and_the_rest_is_counted(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.join(room, a, b)
        self.post(*[message(room, "q%d" % i, a, "number %d" % i) for i in range(1, 5)])
        # The first two go; the third and fourth are over b's two per minute.
        self.expect(b, note(room, "q1", a, "number 1", badge=1))
        self.expect(b, note(room, "q2", a, "number 2", badge=2))
        self.check()
        st, _, _, raw = self.daemon.request("GET", "/metrics", key=None)
        self.assertEqual(st, 200)
        self.assertIn(b"\npushrelay_router_rate_limited_total 2\n", raw)


class TestGrace(RoomsCase):

    rooms = {"presence_grace": "%dms" % (GRACE * 1000)}
    settle = SETTLE

    def test_leave_and_return_within_the_grace_is_never_notified_of_the_meanwhile(self):
        room = self.id_("r")
        a, b, witness = self.id_("a"), self.id_("b"), self.id_("w")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.register(witness, "apns")
        self.join(room, a, b, witness)
        self.post(enter(room, b, "b-phone"))
        left = time.monotonic()
        self.post(leave(room, b, "b-phone"), message(room, "h1", a, "while b is out"))
        # The witness's notification says h1 was routed (and b's copy held).
        self.expect(witness, note(room, "h1", a, "while b is out", badge=1))
        deadline = time.monotonic() + 5
        while not self.received()[self.by_client[witness][0]["device_id"]]:
            self.assertLess(time.monotonic(), deadline, "h1 never reached the witness")
            time.sleep(0.005)
        self.post(enter(room, b, "b-phone"))
        back = time.monotonic()
        self.assertLess(back - left, GRACE, "too slow to return within the grace period: "
                        "the test proves nothing")
        self.post(message(room, "h2", a, "b is back"))
        self.expect(witness, note(room, "h2", a, "b is back", badge=2))
        self.check(until=left + GRACE + SETTLE)
        # Away for good now: the end of this grace brings h3 alone, never h1. (h1 found
        # b in its grace, "about to be away": src/route/route.c counts it as unread.)
        left = time.monotonic()
        self.post(leave(room, b, "b-phone"), message(room, "h3", a, "b is out again"))
        self.expect(witness, note(room, "h3", a, "b is out again", badge=3))
        self.expect(b, note(room, "h3", a, "b is out again", badge=2))
        self.check(until=left + GRACE + SETTLE)

    def test_leave_and_stay_away_notifies_once_when_the_grace_ends(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        self.post(enter(room, b))
        left_ms = harness.now_ms()
        self.post(leave(room, b), message(room, "g1", a, "first", sender_name="Ann"),
                  message(room, "g2", a, "second", sender_name="Ann"))
        self.expect(b, note(room, "g2", a, "second", badge=2, count=2, sender_name="Ann"))
        got = self.check()
        for device_id, records in got.items():
            for r in records:
                self.assertGreaterEqual(r["time_ms"] - left_ms, GRACE * 1000 - TIMER_SLACK_MS,
                                        "sent before the grace ended: %s" % device_id)

    def test_one_message_held_through_the_grace_is_sent_alone(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "fcm")
        self.register(b, "apns")
        self.join(room, a, b)
        self.post(enter(room, b, "c1"), enter(room, b, "c2"))
        left_ms = harness.now_ms()
        self.post(leave(room, b))       # without a connection id: every connection
        self.post(message(room, "o1", a, "are you there?", room_name="Ops"))
        self.expect(b, note(room, "o1", a, "are you there?", badge=1, room_name="Ops"))
        got = self.check()
        [record] = got[self.by_client[b][0]["device_id"]]
        self.assertGreaterEqual(record["time_ms"] - left_ms, GRACE * 1000 - TIMER_SLACK_MS)


# ---- coalescing, edits and deletes --------------------------------------------------

WINDOW = 0.3


class TestCoalescing(RoomsCase):

    rooms = {"coalesce_window": "%dms" % (WINDOW * 1000)}
    settle = WINDOW + SETTLE

    def test_three_messages_within_the_window_become_one_notification(self):
        room = self.id_("r")
        a, b, c = self.id_("a"), self.id_("b"), self.id_("c")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.register(c, "fcm")
        self.join(room, a, b, c)
        coalesced = metric(self.daemon, "pushrelay_router_coalesced_total") or 0
        posted_ms = harness.now_ms()
        self.post(message(room, "c1", a, "first", sender_name="Alice", room_name="Team"),
                  message(room, "c2", a, "second", sender_name="Alice", room_name="Team"),
                  message(room, "c3", a, "third", sender_name="Alice", room_name="Team"))
        for client in (b, c):
            self.expect(client, note(room, "c3", a, "third", badge=3, count=3,
                                     sender_name="Alice", room_name="Team"))
        got = self.check()
        for records in got.values():
            for r in records:
                self.assertGreaterEqual(r["time_ms"] - posted_ms, WINDOW * 1000 - TIMER_SLACK_MS,
                                        "sent before the window ended")
        # Two messages folded into the third's notification, for each of b and c.
        self.assertEqual(metric(self.daemon, "pushrelay_router_coalesced_total") - coalesced, 4)

    def test_message_deleted_before_the_window_ends_is_not_sent(self):
        r1, r2 = self.id_("r1"), self.id_("r2")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(r1, a, b)
        self.join(r2, a, b)
        self.post(message(r1, "e1", a, "keep me"), message(r1, "e2", a, "delete me"),
                  message(r2, "e3", a, "delete me too"))
        time.sleep(0.05)
        self.post(delete(r1, "e2"), delete(r2, "e3"))
        # r1: only e1 is left; r2: nothing. The badge counted all three messages.
        self.expect(b, note(r1, "e1", a, "keep me", badge=3))
        self.check()

    def test_message_deleted_in_the_same_batch_is_not_sent(self):
        r1, r2 = self.id_("r1"), self.id_("r2")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(r1, a, b)
        self.join(r2, a, b)
        self.post(message(r1, "f1", a, "oops"), delete(r1, "f1"),
                  message(r2, "f2", a, "still here"))
        # Deleted before it was even routed, f1 never counted as unread.
        self.expect(b, note(r2, "f2", a, "still here", badge=1))
        self.check()

    def test_edit_before_the_window_ends_changes_the_notification_text(self):
        r1 = self.id_("r1")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(r1, a, b)
        self.post(message(r1, "u1", a, "helo", sender_name="Ann"))
        time.sleep(0.05)
        self.post(update(r1, "u1", "hello"))
        self.expect(b, note(r1, "u1", a, "hello", badge=1, sender_name="Ann"))
        self.check()

    def test_edit_in_the_same_batch_changes_the_notification_text(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        self.post(message(room, "u2", a, "typo", sender_name="Ann"),
                  update(room, "u2", "fixed"))
        self.expect(b, note(room, "u2", a, "fixed", badge=1, sender_name="Ann"))
        self.check()


# ---- restarts: dedupe and the outbox ----------------------------------------------------

class TestRestart(RoomsCase):

    def notify_then_kill_9_and_restart(self, room, a, b):
        """b is notified of z1 from a; kill -9 once the marks are written; restart."""
        self.post(message(room, "z1", a, "once"))
        self.expect(b, note(room, "z1", a, "once", badge=1))
        self.check()
        # Notified marks and unread counts are written behind (every 200 ms).
        time.sleep(0.4)
        self.daemon.kill9()
        self.daemon.start()
        # Ready to take events: with the room state in Redis, once it is connected too
        # (before that, POST /v1/events answers 503, as a load balancer's /readyz says).
        deadline = time.monotonic() + 10
        while self.daemon.request("GET", "/readyz", key=None)[0] != 200:
            self.assertLess(time.monotonic(), deadline, self.daemon.log_text())
            time.sleep(0.02)

    def test_duplicate_message_after_kill_9_and_restart_is_not_notified_again(self):
        room, other = self.id_("r"), self.id_("other")
        a, b, c = self.id_("a"), self.id_("b"), self.id_("c")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.register(c, "apns")
        self.join(room, a, b)
        self.join(other, a, c)
        self.notify_then_kill_9_and_restart(room, a, b)
        self.post(message(room, "z1", a, "once"))
        # Routed after z1: when c has it, z1 was routed (c is not in z1's room).
        self.post(message(other, "y1", a, "sync"))
        self.expect(c, note(other, "y1", a, "sync", badge=1))
        self.check()

    def test_duplicate_message_after_kill_9_and_restart_is_not_unread_again(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "apns")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        self.notify_then_kill_9_and_restart(room, a, b)
        self.post(message(room, "z1", a, "once"))
        self.post(message(room, "z2", a, "new"))
        # Unread: z1 once (the duplicate is ignored), then z2.
        self.expect(b, note(room, "z2", a, "new", badge=2))
        self.check()

    def kill_9_and_resume(self, batches):
        """kill -9, let the mocks answer again, restart: the outbox's batches resume.
        Returns the requests each device had before, and the restart's log offset."""
        self.daemon.kill9()
        for mock in (self.apns, self.fcm):
            mock.clear_rules()
        before = {d: len(r) for d, r in self.received().items()}
        offset = self.daemon.log_offset()
        self.daemon.start()
        line = self.daemon.wait_for_log(
            lambda x: x.get("msg") == "resuming event batches accepted before the restart",
            since=offset)
        self.assertEqual(line.get("batches"), str(batches))
        return before, offset

    def test_accepted_events_survive_kill_9_and_are_notified_after_restart(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "fcm")
        self.register(b, "apns")
        self.register(b, "fcm")
        self.join(room, a, b)
        self.apns.add_rule(delay_ms=2000)
        self.fcm.add_rule(delay_ms=2000)
        self.post(message(room, "k1", a, "survive this"))
        before, offset = self.kill_9_and_resume(batches=1)
        # Sent again after the restart, once per device. The unread count may or may not
        # have been written before the kill (written behind every 200 ms), so the
        # replayed message counts once or twice.
        deadline = time.monotonic() + 10
        while True:
            got = self.received()
            after = {d: got[d][before[d]:] for d in got}
            if all(after[dev["device_id"]] for dev in self.by_client[b]):
                break
            self.assertLess(time.monotonic(), deadline, "not notified after the restart:\n%s"
                            % self.daemon.log_text(offset))
            time.sleep(0.02)
        time.sleep(SETTLE)
        got = self.received()
        after = {d: got[d][before[d]:] for d in got}
        self.assertEqual([r for dev in self.by_client[a] for r in got[dev["device_id"]]], [])
        for dev in self.by_client[b]:
            [record] = after[dev["device_id"]]
            self.assertEqual(record["status"], 200)
            shown = self.shown(dev["device_id"], record)
            badge = (shown["body"]["aps"]["badge"] if dev["platform"] == "apns" else
                     shown["body"]["message"]["android"]["notification"]["notification_count"])
            self.assertIn(badge, (1, 2))
            n = note(room, "k1", a, "survive this", badge=badge)
            want = apns_expected(n) if dev["platform"] == "apns" else \
                fcm_expected(n, dev["token"])
            self.assertEqual(shown, want)

    def test_notifications_sent_again_after_kill_9_carry_their_first_copys_collapse_id(self):
        # Delivery is at least once: what was in flight at a kill -9 is sent again after
        # the restart. Every copy carries the message's own collapse identity, so the
        # phone replaces the first with the second instead of showing both.
        a = self.id_("a")
        rooms = [(self.id_("r%d" % i), self.id_("b%d" % i)) for i in range(40)]
        for room, b in rooms:
            self.register(b, "apns")
            self.register(b, "fcm")
            self.join(room, a, b)
        self.apns.add_rule(delay_ms=5000)
        self.fcm.add_rule(delay_ms=5000)
        self.post(*[message(room, "c%d" % i, a, "burst %d" % i)
                    for i, (room, _) in enumerate(rooms)])
        # Every first copy reached the mocks, none was answered: all in flight.
        deadline = time.monotonic() + 10
        while sum(len(r) for r in self.received().values()) < 2 * len(rooms):
            self.assertLess(time.monotonic(), deadline, "the burst did not reach the mocks")
            time.sleep(0.02)
        before, offset = self.kill_9_and_resume(batches=1)
        deadline = time.monotonic() + 10
        while any(len(r) < 2 for r in self.received().values()):
            self.assertLess(time.monotonic(), deadline, "not sent again after the restart:\n%s"
                            % self.daemon.log_text(offset))
            time.sleep(0.02)
        time.sleep(SETTLE)
        got = self.received()
        for i, (room, b) in enumerate(rooms):
            want = collapse_id_of(room, "c%d" % i)
            for dev in self.by_client[b]:
                records = got[dev["device_id"]]
                self.assertEqual(len(records), 2, "%s: %d copies" % (dev["device_id"],
                                                                      len(records)))
                for record in records:
                    shown = self.shown(dev["device_id"], record)
                    if dev["platform"] == "apns":
                        self.assertEqual(shown["headers"]["apns-collapse-id"], want)
                    else:
                        message_ = shown["body"]["message"]
                        self.assertEqual(message_["android"]["collapse_key"], want)
                        self.assertEqual(message_["apns"]["headers"]["apns-collapse-id"], want)
                        self.assertEqual(message_["android"]["notification"]["tag"], room)

    def test_replayed_batches_hold_what_was_accepted_as_sent_and_without_skipped_events(self):
        # The outbox keeps a batch's body as it came when every event parsed (here with
        # spaces and newlines), and re-serializes it without the skipped ones otherwise.
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(b, "apns")
        self.join(room, a, b)
        self.apns.add_rule(delay_ms=2000)
        pretty = json.dumps({"events": [message(room, "p1", a, "sent with spaces")]},
                            indent=2).encode()
        st, _, body, raw = self.post_raw(None, raw_body=pretty)
        self.assertEqual((st, body), (202, {"accepted": 1, "skipped": []}), raw)
        st, _, body, raw = self.post_raw({"events": [
            {"type": "message", "room": room, "id": "p2"},
            message(room, "p3", a, "next to a bad one")]})
        self.assertEqual((st, body["accepted"]), (202, 1), raw)
        self.assertEqual(body["skipped"], [{"index": 0, "reason": "client_id: is required"}])
        before, offset = self.kill_9_and_resume(batches=2)
        [dev] = self.by_client[b]
        deadline = time.monotonic() + 10
        while len(self.received()[dev["device_id"]]) - before[dev["device_id"]] < 2:
            self.assertLess(time.monotonic(), deadline, "not notified after the restart:\n%s"
                            % self.daemon.log_text(offset))
            time.sleep(0.02)
        time.sleep(SETTLE)
        after = self.received()[dev["device_id"]][before[dev["device_id"]]:]
        self.assertEqual(sorted(self.shown(dev["device_id"], r)["body"]["message_id"]
                                for r in after), ["p1", "p3"])
        self.assertNotIn("malformed events skipped", self.daemon.log_text(offset))


# ---- backpressure ------------------------------------------------------------------------

class TestBackpressure(RoomsCase):

    rooms = {"queue_size": "100"}

    def test_full_router_answers_503_and_everything_accepted_is_delivered(self):
        room = self.id_("r")
        a, b = self.id_("a"), self.id_("b")
        self.register(a, "fcm")
        [dev] = self.register(b, "apns")
        self.join(room, a, b)
        self.apns.add_rule(delay_ms=2500)
        accepted, refused, busy = [], [], None
        for batch in range(40):
            ids = ["bp%03d-%02d" % (batch, i) for i in range(10)]
            result = self.post_raw({"events": [message(room, m, a, "text " + m)
                                               for m in ids]})
            if result[0] == 503:
                busy = result
                refused = ids
                break
            self.assertEqual(result[0], 202, result[3])
            self.assertEqual(result[2], {"accepted": 10, "skipped": []})
            accepted += ids
        self.assertIsNotNone(busy, "never 503 with 400 events in flight:\n%s"
                             % self.daemon.log_text(self.log_start)[-4000:])
        self.assertErrorBody(busy, 503, "unavailable", BUSY)
        self.assertRegex(busy[1].get("retry-after", ""), r"^[1-9][0-9]*$")
        # 100 events in flight fill the queue; the batch after them is accepted and
        # waits, the next one is refused.
        self.assertGreaterEqual(len(accepted), 100)
        self.assertLessEqual(len(accepted), 120)
        self.apns.clear_rules()
        for i, m in enumerate(accepted):
            self.expect(b, note(room, m, a, "text " + m, badge=i + 1))
        self.check(timeout=20)
        # The source takes events again.
        self.post(message(room, "last", a, "after"))
        self.expect(b, note(room, "last", a, "after", badge=len(accepted) + 1))
        self.check()
        self.assertEqual(len(self.received()[dev["device_id"]]), len(accepted) + 1)


# ---- validation -----------------------------------------------------------------------

class TestValidation(harness.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.daemon = harness.Daemon(config={"events": {"max_batch": "5"}})
        try:
            cls.daemon.start()
        except BaseException:
            cls.daemon.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def test_invalid_batches_get_exact_errors(self):
        room = "v-" + uid()
        ok = enter(room, "alice")
        non_empty = "events: must be a non-empty array of event objects"
        cases = [
            ("empty array", {"events": []}, 400, "invalid_field", non_empty, "events"),
            ("an object", {"events": {"type": "message"}}, 400, "invalid_field", non_empty,
             "events"),
            ("a string", {"events": "x"}, 400, "invalid_field", non_empty, "events"),
            ("null", {"events": None}, 400, "invalid_field", non_empty, "events"),
            ("missing", {}, 400, "missing_field", "events: is required", "events"),
            ("unknown field", {"events": [ok], "batch_id": "1"}, 400, "invalid_field",
             "batch_id: unknown field", "batch_id"),
            ("too many", {"events": [ok] * 6}, 413, "payload_too_large",
             "events: at most 5 events per request", "events"),
        ]
        for what, body, status, code, msg, field in cases:
            with self.subTest(what):
                self.assertErrorBody(self.daemon.request("POST", "/v1/events", body=body),
                                     status, code, msg, field)
        with self.subTest("not JSON"):
            self.assertErrorBody(self.daemon.request("POST", "/v1/events", raw_body=b"[{"),
                                 400, "invalid_json")
        with self.subTest("an array"):
            self.assertErrorBody(self.daemon.request("POST", "/v1/events", body=[ok]), 400,
                                 "invalid_json", "request body must be a JSON object")
        with self.subTest("no API key"):
            self.assertUnauthorized(self.daemon.request("POST", "/v1/events",
                                                        body={"events": [ok]}, key=None))
        with self.subTest("at most max_batch"):
            st, _, body, raw = self.daemon.request("POST", "/v1/events",
                                                   body={"events": [ok] * 5})
            self.assertEqual((st, body), (202, {"accepted": 5, "skipped": []}), raw)
        with self.subTest("all skipped"):
            st, _, body, raw = self.daemon.request("POST", "/v1/events",
                                                   body={"events": [{"type": "nope"}]})
            self.assertEqual((st, body), (202, {"accepted": 0, "skipped": [
                {"index": 0, "reason": "unknown event type 'nope'"}]}), raw)

    def post_events_text(self, text):
        """POST /v1/events with text as the body, exactly as written."""
        return self.daemon.request("POST", "/v1/events", raw_body=text.encode())

    def test_flat_batch_skips_a_malformed_event_with_its_exact_reason(self):
        room = "v-" + uid()
        st, _, body, raw = self.post_events_text(
            '{"events":[{"type":"presence.enter","room":"%s","client_id":"alice"},'
            '{"type":"message","room":"%s","id":"m1","text":"no sender"}]}' % (room, room))
        self.assertEqual((st, body), (202, {"accepted": 1, "skipped": [
            {"index": 1, "reason": "client_id: is required"}]}), raw)

    def test_batch_with_a_push_object_and_an_escape_gets_the_same_answer(self):
        # Outside the flat events the batch is read by jansson: the answer is the same.
        room = "v-" + uid()
        st, _, body, raw = self.post_events_text(
            '{"events":[{"type":"message","room":"%s","id":"m2","client_id":"alice",'
            '"text":"say \\"hi\\" \\u00e9","push":{"title":"T","data":{"k":"v"}}},'
            '{"type":"message","room":"%s","id":"m1","text":"no sender"}]}' % (room, room))
        self.assertEqual((st, body), (202, {"accepted": 1, "skipped": [
            {"index": 1, "reason": "client_id: is required"}]}), raw)

    def test_duplicate_key_inside_an_event_rejects_the_whole_batch(self):
        self.assertErrorBody(
            self.post_events_text(
                '{"events":[{"type":"presence.enter","room":"r","client_id":"alice",'
                '"client_id":"bob"}]}'),
            400, "invalid_json", "request body is not valid JSON: duplicate object key "
            "near '\"client_id\"' at line 1, column 78")

    def test_invalid_json_comes_before_too_many_events(self):
        # Six events where five may come, in a body cut short: jansson's error wins.
        events = ",".join(['{"type":"presence.enter","room":"r","client_id":"alice"}'] * 6)
        self.assertErrorBody(
            self.post_events_text('{"events":[%s] ,' % events), 400, "invalid_json",
            "request body is not valid JSON: string or '}' expected near end of file "
            "at line 1, column 355")

    def test_invalid_json_comes_before_404_when_disabled(self):
        d = self.start_daemon(config={"events": {"enabled": "no"}})
        self.assertErrorBody(
            d.request("POST", "/v1/events", raw_body=b'{"events":[{"type":"read"}]'), 400,
            "invalid_json", "request body is not valid JSON: '}' expected near end of file "
            "at line 1, column 27")

    def test_events_endpoint_is_404_when_disabled(self):
        d = self.start_daemon(config={"events": {"enabled": "no"}})
        self.assertErrorBody(
            d.request("POST", "/v1/events", body={"events": [enter("r", "alice")]}), 404,
            "not_found", "POST /v1/events is off ([events] enabled = no)")


if __name__ == "__main__":
    harness.main()
