"""The room membership endpoints of docs/api.md: exact bodies, pagination, database rows."""

import time

import harness
from harness import DaemonTestCase, now_ms, quote, time_to_ms

# 2026-12-01T08:00:00Z
DEC_1_0800_MS = 1796112000000


def membership(room_id, client_id, joined_at, muted_until=None, mentions_only=False):
    return {"room_id": room_id, "client_id": client_id, "joined_at": joined_at,
            "muted_until": muted_until, "mentions_only": mentions_only}


class RoomTestCase(DaemonTestCase):

    def setUp(self):
        self.d = self.start_daemon()

    def member_path(self, room_id, client_id, suffix=""):
        return "/v1/rooms/%s/members/%s%s" % (quote(room_id), quote(client_id), suffix)

    def join(self, room_id, client_id, expect=201, **kw):
        result = self.d.request("PUT", self.member_path(room_id, client_id), **kw)
        self.assertEqual(result[0], expect, result[3])
        return result[2]

    def prefs(self, room_id, client_id, body, **kw):
        return self.d.request("PUT", self.member_path(room_id, client_id, "/prefs"), body, **kw)

    def members(self, room_id, query=""):
        return self.d.request("GET", "/v1/rooms/%s/members%s" % (quote(room_id), query))

    def rows(self, room_id=None):
        if room_id is None:
            return self.d.query("SELECT * FROM memberships ORDER BY room_id, client_id")
        return self.d.query("SELECT * FROM memberships WHERE room_id = ? ORDER BY client_id",
                            (room_id,))

    def assertRow(self, m):
        """The database row holds exactly the membership the API returned (0: never)."""
        rows = self.d.query("SELECT * FROM memberships WHERE room_id = ? AND client_id = ?",
                            (m["room_id"], m["client_id"]))
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0], {
            "room_id": m["room_id"],
            "client_id": m["client_id"],
            "joined_at": time_to_ms(m["joined_at"]),
            "muted_until": 0 if m["muted_until"] is None else time_to_ms(m["muted_until"]),
            "mentions_only": 1 if m["mentions_only"] else 0,
        })


class MemberPutDeleteTest(RoomTestCase):

    def test_put_member_without_body_returns_201_with_membership(self):
        before = now_ms()
        status, headers, got, raw = self.d.request("PUT", "/v1/rooms/support-1234/members/alice")
        self.assertEqual(status, 201, raw)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertTime(got["joined_at"], before, 5000)
        self.assertEqual(got, membership("support-1234", "alice", got["joined_at"]))
        self.assertRow(got)

    def test_put_member_with_empty_object_returns_201(self):
        got = self.join("room-1", "alice", body={})
        self.assertEqual(got, membership("room-1", "alice", got["joined_at"]))
        self.assertRow(got)

    def test_put_existing_member_returns_200_with_it_unchanged(self):
        first = self.join("room-1", "alice")
        status, _, prefs, raw = self.prefs("room-1", "alice",
                                           {"muted_until": "2026-12-01T08:00:00Z",
                                            "mentions_only": True})
        self.assertEqual(status, 200, raw)
        time.sleep(0.01)
        again = self.join("room-1", "alice", expect=200)
        self.assertEqual(again, prefs)
        self.assertEqual(again["joined_at"], first["joined_at"])
        again = self.join("room-1", "alice", expect=200, body={})
        self.assertEqual(again, prefs)
        self.assertEqual(len(self.rows()), 1)
        self.assertRow(again)

    def test_delete_member_returns_204_then_404(self):
        self.join("room-1", "alice")
        kept_other_client = self.join("room-1", "bob")
        kept_other_room = self.join("room-2", "alice")
        status, _, _, raw = self.d.request("DELETE", "/v1/rooms/room-1/members/alice")
        self.assertEqual(status, 204)
        self.assertEqual(raw, b"")
        self.assertEqual([(r["room_id"], r["client_id"]) for r in self.rows()],
                         [("room-1", "bob"), ("room-2", "alice")])
        self.assertErrorBody(self.d.request("DELETE", "/v1/rooms/room-1/members/alice"),
                             404, "not_found")
        self.assertEqual(self.members("room-1")[2],
                         {"room_id": "room-1", "members": [kept_other_client],
                          "next_after": None})
        self.assertEqual(self.members("room-2")[2],
                         {"room_id": "room-2", "members": [kept_other_room],
                          "next_after": None})

    def test_rejoining_after_delete_is_a_new_membership(self):
        self.join("room-1", "alice")
        self.prefs("room-1", "alice", {"mentions_only": True})
        self.assertEqual(self.d.request("DELETE", "/v1/rooms/room-1/members/alice")[0], 204)
        got = self.join("room-1", "alice", expect=201)
        self.assertEqual(got, membership("room-1", "alice", got["joined_at"]))

    def test_ids_are_percent_decoded_path_segments(self):
        for room_id, client_id in (("support/1234", "a b"), ("комната", "zoë?x"),
                                   ("r" * 128, "c" * 128)):
            with self.subTest(room_id=room_id):
                got = self.join(room_id, client_id)
                self.assertEqual(got, membership(room_id, client_id, got["joined_at"]))
                self.assertRow(got)
                status, _, listed, _ = self.members(room_id)
                self.assertEqual(listed, {"room_id": room_id, "members": [got],
                                          "next_after": None})


class MemberListTest(RoomTestCase):

    def test_members_are_listed_by_client_id(self):
        stored = {}
        for client_id in ("dave", "Zed", "alice", "carol", "bob"):
            stored[client_id] = self.join("room-1", client_id)
        self.join("room-2", "eve")
        status, _, body, raw = self.members("room-1")
        self.assertEqual(status, 200, raw)
        self.assertEqual(body, {"room_id": "room-1",
                                "members": [stored[c] for c in
                                            ("Zed", "alice", "bob", "carol", "dave")],
                                "next_after": None})

    def test_five_members_in_pages_of_two(self):
        stored = [self.join("room-1", c) for c in ("e", "c", "a", "d", "b")]
        by_id = {m["client_id"]: m for m in stored}
        status, _, page1, raw = self.members("room-1", "?limit=2")
        self.assertEqual(status, 200, raw)
        self.assertEqual(page1, {"room_id": "room-1", "members": [by_id["a"], by_id["b"]],
                                 "next_after": "b"})
        status, _, page2, raw = self.members("room-1", "?limit=2&after=b")
        self.assertEqual(status, 200, raw)
        self.assertEqual(page2, {"room_id": "room-1", "members": [by_id["c"], by_id["d"]],
                                 "next_after": "d"})
        status, _, page3, raw = self.members("room-1", "?after=d&limit=2")
        self.assertEqual(status, 200, raw)
        self.assertEqual(page3, {"room_id": "room-1", "members": [by_id["e"]],
                                 "next_after": None})

    def test_next_after_is_percent_encoded_in_the_query(self):
        ids = ["a&b", "a/c", "a=d", "zoë"]
        stored = {c: self.join("room-1", c) for c in ids}
        seen = []
        after = None
        for _ in range(10):
            query = "?limit=1" + ("" if after is None else "&after=" + quote(after))
            status, _, page, raw = self.members("room-1", query)
            self.assertEqual(status, 200, raw)
            seen.extend(page["members"])
            after = page["next_after"]
            if after is None:
                break
        self.assertEqual(seen, [stored[c] for c in sorted(ids, key=lambda s: s.encode())])

    def test_after_an_id_that_is_not_a_member(self):
        stored = {c: self.join("room-1", c) for c in ("a", "c", "e")}
        status, _, page, raw = self.members("room-1", "?after=b")
        self.assertEqual(status, 200, raw)
        self.assertEqual(page, {"room_id": "room-1", "members": [stored["c"], stored["e"]],
                                "next_after": None})
        status, _, page, raw = self.members("room-1", "?after=z")
        self.assertEqual(page, {"room_id": "room-1", "members": [], "next_after": None})

    def test_limit_bounds_are_inclusive(self):
        a = self.join("room-1", "a")
        for limit in ("1", "1000"):
            with self.subTest(limit=limit):
                status, _, page, raw = self.members("room-1", "?limit=" + limit)
                self.assertEqual(status, 200, raw)
                self.assertEqual(page, {"room_id": "room-1", "members": [a],
                                        "next_after": None})

    def test_default_limit_is_100(self):
        conn_ids = ["m%03d" % i for i in range(101)]
        for c in conn_ids:
            self.join("room-1", c)
        status, _, page, raw = self.members("room-1")
        self.assertEqual(status, 200, raw)
        self.assertEqual([m["client_id"] for m in page["members"]], conn_ids[:100])
        self.assertEqual(page["next_after"], "m099")
        status, _, page, raw = self.members("room-1", "?after=m099")
        self.assertEqual([m["client_id"] for m in page["members"]], ["m100"])
        self.assertIsNone(page["next_after"])

    def test_unknown_room_has_no_members(self):
        status, _, body, _ = self.members("nowhere")
        self.assertEqual((status, body),
                         (200, {"room_id": "nowhere", "members": [], "next_after": None}))


class PrefsTest(RoomTestCase):

    def test_prefs_set_mute_and_mentions_only(self):
        joined = self.join("support-1234", "alice")
        status, _, got, raw = self.prefs("support-1234", "alice",
                                         {"muted_until": "2026-12-01T08:00:00Z",
                                          "mentions_only": True})
        self.assertEqual(status, 200, raw)
        self.assertEqual(got, membership("support-1234", "alice", joined["joined_at"],
                                         "2026-12-01T08:00:00.000Z", True))
        self.assertRow(got)
        self.assertEqual(self.rows()[0]["muted_until"], DEC_1_0800_MS)
        self.assertEqual(self.members("support-1234")[2]["members"], [got])
        self.assertEqual(self.join("support-1234", "alice", expect=200), got)

    def test_absent_fields_are_left_as_they_are(self):
        joined = self.join("room-1", "alice")
        base = membership("room-1", "alice", joined["joined_at"])
        steps = [
            ({"mentions_only": True}, dict(base, mentions_only=True)),
            ({"muted_until": "2026-12-01T08:00:00Z"},
             dict(base, mentions_only=True, muted_until="2026-12-01T08:00:00.000Z")),
            ({}, dict(base, mentions_only=True, muted_until="2026-12-01T08:00:00.000Z")),
            ({"mentions_only": False}, dict(base, muted_until="2026-12-01T08:00:00.000Z")),
            ({"muted_until": None}, base),
        ]
        for body, want in steps:
            with self.subTest(body=body):
                status, _, got, raw = self.prefs("room-1", "alice", body)
                self.assertEqual((status, got), (200, want), raw)
                self.assertRow(got)

    def test_muted_until_accepts_rfc3339_forms(self):
        self.join("room-1", "alice")
        for text, want in (("2026-12-01T08:00:00.250Z", "2026-12-01T08:00:00.250Z"),
                           ("2026-12-01T09:30:00+01:30", "2026-12-01T08:00:00.000Z"),
                           ("2026-12-01T03:00:00.5-05:00", "2026-12-01T08:00:00.500Z"),
                           # The last time RFC 3339 can write, and one before it.
                           ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
                           ("9999-12-31T23:59:59+01:00", "9999-12-31T22:59:59.000Z")):
            with self.subTest(muted_until=text):
                status, _, got, raw = self.prefs("room-1", "alice", {"muted_until": text})
                self.assertEqual(status, 200, raw)
                self.assertEqual(got["muted_until"], want)
                self.assertRow(got)

    def test_record_from_get_can_be_put_back_as_prefs(self):
        joined = self.join("room-1", "alice")
        time.sleep(0.01)
        record = dict(joined, mentions_only=True, joined_at="2001-01-01T00:00:00.000Z")
        status, _, got, raw = self.prefs("room-1", "alice", record)
        self.assertEqual(status, 200, raw)
        self.assertEqual(got, dict(joined, mentions_only=True))
        self.assertRow(got)

    def test_prefs_of_a_non_member_is_404_and_creates_nothing(self):
        self.join("room-1", "bob")
        result = self.prefs("room-1", "alice", {"mentions_only": True})
        self.assertErrorBody(result, 404, "not_found")
        result = self.prefs("room-2", "bob", {"mentions_only": True})
        self.assertErrorBody(result, 404, "not_found")
        self.assertEqual([(r["room_id"], r["client_id"]) for r in self.rows()],
                         [("room-1", "bob")])


if __name__ == "__main__":
    harness.main()
