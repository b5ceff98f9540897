"""Writes are durable: acknowledged writes survive kill -9 and restarts; a database from a
newer pushrelayd is refused."""

import http.client
import json
import signal
import threading
import time

import harness
from harness import DaemonTestCase, apns_device, apns_token


class KillTest(DaemonTestCase):

    def test_acknowledged_registrations_survive_kill_9(self):
        d = self.start_daemon()
        acked = []
        attempted = []
        failures = []
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                device_id = "dur-%06d" % i
                token = apns_token()
                i += 1
                attempted.append(device_id)
                try:
                    status, _, body, raw = d.request("PUT", "/v1/devices/" + device_id,
                                                     apns_device("load", token=token),
                                                     timeout=5)
                except (OSError, http.client.HTTPException):
                    break
                if 200 <= status < 300:
                    acked.append((device_id, token))
                else:
                    failures.append((status, raw))

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(1.0)
        d.kill9()
        stop.set()
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(failures, [])
        self.assertGreaterEqual(len(acked), 10, "too few writes to prove anything")

        d.start()
        for device_id, token in acked:
            status, _, body, raw = d.request("GET", "/v1/devices/" + device_id)
            self.assertEqual(status, 200, "acknowledged %s lost after kill -9" % device_id)
            self.assertEqual((body["client_id"], body["token"]), ("load", token))
        count = d.query("SELECT COUNT(*) AS n FROM devices WHERE client_id = 'load'")[0]["n"]
        self.assertGreaterEqual(count, len(acked))
        self.assertLessEqual(count, len(attempted))
        status, _, listed, _ = d.request("GET", "/v1/clients/load/devices")
        self.assertEqual(len(listed["devices"]), count)
        self.assertEqual(d.stop(), 0)

    def test_concurrent_registrations_acknowledged_before_kill_9_all_survive(self):
        """16 keep-alive connections register at once (their writes share commits);
        kill -9 lands just after an answer, with requests in flight."""
        d = self.start_daemon()
        acked = []
        attempted = []
        failures = []
        lock = threading.Lock()
        enough = threading.Event()
        stop = threading.Event()

        def writer(n):
            conn = d.connection(timeout=5)
            i = 0
            while not stop.is_set():
                device_id = "con-%02d-%05d" % (n, i)
                token = apns_token()
                i += 1
                with lock:
                    attempted.append(device_id)
                try:
                    conn.request("PUT", "/v1/devices/" + device_id,
                                 body=json.dumps(apns_device("many", token=token)),
                                 headers={"Authorization": "Bearer " + d.key,
                                          "Content-Type": "application/json"})
                    r = conn.getresponse()
                    raw = r.read()
                except (OSError, http.client.HTTPException):
                    break
                with lock:
                    if r.status == 201:
                        acked.append((device_id, token))
                        if len(acked) >= 400:
                            enough.set()
                    else:
                        failures.append((r.status, raw))
            conn.close()

        threads = [threading.Thread(target=writer, args=(n,), daemon=True)
                   for n in range(16)]
        for t in threads:
            t.start()
        enough.wait(20)
        d.kill9()
        stop.set()
        for t in threads:
            t.join(10)
            self.assertFalse(t.is_alive())
        self.assertEqual(failures, [])
        self.assertGreaterEqual(len(acked), 400, "too few writes to prove anything")

        d.start()
        stored = {row["device_id"]: row["token"] for row in
                  d.query("SELECT device_id, token FROM devices WHERE client_id = 'many'")}
        lost = [device_id for device_id, token in acked if stored.get(device_id) != token]
        self.assertEqual(lost, [], "acknowledged registrations lost after kill -9")
        self.assertLessEqual(len(stored), len(attempted))
        for device_id, token in acked[:: max(1, len(acked) // 20)]:
            status, _, body, raw = d.request("GET", "/v1/devices/" + device_id)
            self.assertEqual(status, 200, raw)
            self.assertEqual((body["client_id"], body["token"]), ("many", token))
        self.assertEqual(d.stop(), 0)

    def test_memberships_prefs_and_deletes_survive_restart_and_kill_9(self):
        d = self.start_daemon()
        for client in ("alice", "bob", "carol"):
            status, _, _, raw = d.request("PUT", "/v1/rooms/room-1/members/" + client)
            self.assertEqual(status, 201, raw)
        status, _, _, raw = d.request("PUT", "/v1/rooms/room-1/members/alice/prefs",
                                      {"muted_until": "2026-12-01T08:00:00Z",
                                       "mentions_only": True})
        self.assertEqual(status, 200, raw)
        status, _, device, raw = d.request("PUT", "/v1/devices/phone", apns_device("alice"))
        self.assertEqual(status, 201, raw)
        status, _, gone, raw = d.request("PUT", "/v1/devices/old", apns_device("alice"))
        self.assertEqual(status, 201, raw)
        members = d.request("GET", "/v1/rooms/room-1/members")[2]

        # A clean restart.
        self.assertEqual(d.stop(signal.SIGTERM), 0)
        d.start()
        self.assertEqual(d.request("GET", "/v1/rooms/room-1/members")[2], members)
        self.assertEqual(d.request("GET", "/v1/devices/phone")[2], device)

        # Changes made just before a kill -9.
        status, _, bob, raw = d.request("PUT", "/v1/rooms/room-1/members/bob/prefs",
                                        {"mentions_only": True})
        self.assertEqual(status, 200, raw)
        self.assertEqual(d.request("DELETE", "/v1/rooms/room-1/members/carol")[0], 204)
        self.assertEqual(d.request("DELETE", "/v1/devices/old")[0], 204)
        d.kill9()
        d.start()
        status, _, after, _ = d.request("GET", "/v1/rooms/room-1/members")
        self.assertEqual(after, {"room_id": "room-1",
                                 "members": [members["members"][0], bob],
                                 "next_after": None})
        self.assertEqual(d.request("GET", "/v1/devices/phone")[2], device)
        self.assertEqual(d.request("GET", "/v1/devices/old")[0], 404)
        self.assertEqual(d.stop(), 0)


class SchemaVersionTest(DaemonTestCase):

    def test_database_from_a_newer_version_is_refused(self):
        d = self.start_daemon()
        status, _, _, raw = d.request("PUT", "/v1/devices/phone", apns_device("alice"))
        self.assertEqual(status, 201, raw)
        self.assertEqual(d.stop(), 0)
        d.set_schema_version(99)

        offset = d.log_offset()
        d.start(wait=False)
        code = d.wait_exit(10)
        self.assertNotEqual(code, 0)
        self.assertGreater(code, 0, "killed by a signal rather than exiting")
        lines = d.log_lines(since=offset)
        self.assertTrue([ln for ln in lines if "schema version 99" in ln],
                        "no log line names schema version 99:\n" + "\n".join(lines))
        self.assertEqual(d.find_log(lambda f: f.get("msg") == "ready", since=offset), [])
        # The database is left alone.
        self.assertEqual(d.schema_version(), 99)
        self.assertEqual([r["device_id"] for r in d.query("SELECT * FROM devices")], ["phone"])


if __name__ == "__main__":
    harness.main()
