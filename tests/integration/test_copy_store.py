"""pushrelayd --copy-store: a SQLite registry copied into PostgreSQL, row for row, in
one transaction; a target that has rows is refused unless --force; the copy serves the
same answers."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DaemonTestCase, apns_device, fcm_device, run_pushrelayd  # noqa: E402

harness.use_store("postgresql")

# Every table with the order that lists its rows the same way on both backends.
TABLES = {
    "devices": "device_id",
    "memberships": "room_id, client_id",
    "pushes": "push_id",
    "push_devices": "push_id, idx",
    "outbox": "id",
    "unread": "client_id, room_id",
    "notified": "id",
}


class CopyStoreTest(DaemonTestCase):

    def source(self):
        """A SQLite daemon's registry with a row of every kind, then stopped."""
        a = self.start_daemon({"store": {"backend": "sqlite"}})
        self.assertIsNone(a.pg)
        for device_id, body in (("phone", apns_device("alice", locale="fr-FR",
                                                      metadata={"model": "iPhone"})),
                                ("tablet", fcm_device("alice")),
                                ("pixel", fcm_device("bob"))):
            status, _, _, raw = a.request("PUT", "/v1/devices/" + device_id, body)
            self.assertEqual(status, 201, raw)
        for room, client in (("room-1", "alice"), ("room-1", "bob"), ("room-2", "bob")):
            status, _, _, raw = a.request("PUT", "/v1/rooms/%s/members/%s" % (room, client))
            self.assertEqual(status, 201, raw)
        status, _, _, raw = a.request("PUT", "/v1/rooms/room-1/members/alice/prefs",
                                      {"muted_until": "2030-01-01T00:00:00Z",
                                       "mentions_only": True})
        self.assertEqual(status, 200, raw)
        status, _, push, raw = a.request("POST", "/v1/push", {
            "recipients": {"device_ids": ["pixel"]},
            "notification": {"title": "t", "body": "b"}})
        self.assertEqual(status, 202, raw)
        deadline = time.monotonic() + 10
        while a.request("GET", "/v1/push/" + push["push_id"])[2].get("finished_at") is None:
            self.assertLess(time.monotonic(), deadline, "the push did not finish")
            time.sleep(0.05)
        # Restarted, so that what deliveries write behind is in and answered.
        self.assertEqual(a.stop(), 0)
        a.start()
        answers = {p: a.request("GET", p)[2] for p in (
            "/v1/devices/phone", "/v1/devices/pixel", "/v1/clients/bob/devices",
            "/v1/rooms/room-1/members", "/v1/rooms/room-2/members",
            "/v1/push/" + push["push_id"])}
        self.assertEqual(a.stop(), 0)
        # What the API does not write at rest: outbox batches, unread counts, marks;
        # and text that COPY must escape.
        a.execute("INSERT INTO outbox (id, received_at, kind, body) VALUES (?, ?, ?, ?)",
                  (7, 1700000000001, "events", '{"events":[]}'))
        a.execute("INSERT INTO outbox (id, received_at, kind, body) VALUES (?, ?, ?, ?)",
                  (12, 1700000000002, "ably", '{"headers":{},"body":"e30="}'))
        a.execute("INSERT INTO unread (client_id, room_id, count) VALUES (?, ?, ?)",
                  ("alice", "room-1", 3))
        a.execute("INSERT INTO unread (client_id, room_id, count) VALUES (?, ?, ?)",
                  ("bob", "room-2", 1))
        for i, (room, message, device) in enumerate((("room-1", "m1", "phone"),
                                                     ("room-1", "m1", "tablet"),
                                                     ("room-2", "m9", "pixel")), 1):
            a.execute("INSERT INTO notified (id, message_key, room_id, message_id, device_id,"
                      " at) VALUES (?, ?, ?, ?, ?, ?)",
                      (i * 10, -7642042639422210167 + i, room, message, device,
                       1700000000000 + i))
        a.execute("UPDATE devices SET last_error = ?, last_error_at = ? WHERE device_id = ?",
                  ("tab\there back\\slash\nline caf\u00e9", 1700000000123, "tablet"))
        return a, answers

    def rows(self, d):
        return {t: d.query("SELECT * FROM %s ORDER BY %s" % (t, order))
                for t, order in TABLES.items()}

    def test_copy_store_copies_every_row_exactly_and_refuses_a_store_with_rows(self):
        a, answers = self.source()
        want = self.rows(a)
        self.assertEqual({t: len(r) for t, r in want.items()},
                         {"devices": 3, "memberships": 3, "pushes": 1, "push_devices": 1,
                          "outbox": 2, "unread": 2, "notified": 3})
        b = self.new_daemon()
        self.assertIsNotNone(b.pg)

        code, out, err = run_pushrelayd(["-c", b.config_path, "--copy-store", a.db_path])
        self.assertEqual(code, 0, err)
        self.assertEqual(out, "copied %s: devices 3, memberships 3, pushes 1 (device rows 1),"
                              " outbox batches 2, unread counts 2, notified marks 3\n"
                         % a.db_path)
        self.assertEqual(self.rows(b), want)
        self.assertEqual(b.schema_version(), 5)

        # Again: the store has rows now, so nothing is copied and nothing changes.
        b.execute("DELETE FROM unread WHERE client_id = ?", ("bob",))
        code, out, err = run_pushrelayd(["-c", b.config_path, "--copy-store", a.db_path])
        self.assertEqual(code, 1)
        self.assertEqual(out, "")
        self.assertIn("has 13 rows already: copying refused (--force replaces them)", err)
        self.assertEqual(len(b.query("SELECT * FROM unread")), 1)
        # --force replaces them, in the same transaction.
        code, out, err = run_pushrelayd(["-c", b.config_path, "--copy-store", a.db_path,
                                         "--force"])
        self.assertEqual(code, 0, err)
        self.assertEqual(self.rows(b), want)
        # New outbox rows and marks are numbered after the copied ones.
        b.execute("INSERT INTO outbox (received_at, kind, body) VALUES (1, 'events', '{}')")
        self.assertEqual(b.query("SELECT max(id) AS id FROM outbox")[0]["id"], 13)
        b.execute("DELETE FROM outbox")

        # The daemon on the copy answers as the one on SQLite did.
        b.start()
        for path, body in answers.items():
            self.assertEqual(b.request("GET", path)[2], body, path)
        self.assertEqual(b.request("GET", "/v1/devices/tablet")[2]["last_error"],
                         "tab\there back\\slash\nline caf\u00e9")
        self.assertEqual(b.stop(), 0)

    def test_copy_store_needs_a_postgresql_target_and_an_existing_source(self):
        a = self.new_daemon({"store": {"backend": "sqlite"}})
        code, out, err = run_pushrelayd(["-c", a.config_path, "--copy-store", a.db_path])
        self.assertEqual(code, 1)
        self.assertIn("[store] backend = postgresql", err)
        b = self.new_daemon()
        missing = os.path.join(b.tmp, "missing.db")
        code, out, err = run_pushrelayd(["-c", b.config_path, "--copy-store", missing])
        self.assertEqual(code, 1)
        self.assertIn("missing.db: No such file or directory", err)
        self.assertFalse(os.path.exists(missing))
        self.assertEqual(b.query("SELECT count(*) AS n FROM devices")[0]["n"], 0)
        code, _, err = run_pushrelayd(["--force"])
        self.assertEqual(code, 2)


if __name__ == "__main__":
    harness.main()
