"""What only the PostgreSQL store does, through the daemon: PostgreSQL stopped under
a stream of registrations and started again (503s and /readyz meanwhile, every
acknowledged write kept), the configuration's checks, the connection string's password
never in the log, and several daemons sharing one database."""

import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
import mockctl  # noqa: E402
from harness import DaemonTestCase, apns_device, apns_token, run_pushrelayd  # noqa: E402

harness.use_store("postgresql")


class OutageTest(DaemonTestCase):

    def readyz(self, d):
        status, _, body, raw = d.request("GET", "/readyz", key=None)
        self.assertIsInstance(body.pop("loop_lag_ms", None), int, raw)
        return status, body

    def wait_readyz(self, d, want, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = self.readyz(d)
            if want(got):
                return got
            if time.monotonic() > deadline:
                self.fail("/readyz is still %r after %.0f s" % (got, timeout))
            time.sleep(0.05)

    def test_postgresql_stopped_then_started_writes_get_503_and_nothing_acknowledged_is_lost(
            self):
        d = self.start_daemon()
        server = d.pg
        ready = (200, {"status": "ready", "store": "ok"})
        self.wait_readyz(d, lambda got: got == ready, 10)
        acked, refused, others = [], [], []
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                device_id = "out-%06d" % i
                token = apns_token()
                i += 1
                try:
                    status, _, body, raw = d.request(
                        "PUT", "/v1/devices/" + device_id,
                        apns_device("outage", token=token), timeout=10)
                except (OSError, http.client.HTTPException) as e:
                    others.append((device_id, repr(e)))
                    continue
                if status in (200, 201):
                    acked.append((device_id, token))
                elif status == 503:
                    refused.append(device_id)
                    self.assertEqual(body["error"]["code"], "unavailable")
                else:
                    others.append((device_id, status, raw))
                time.sleep(0.005)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(0.5)
        before = len(acked)
        self.assertGreater(before, 0, "no write before the outage")

        server.stop()
        down = self.wait_readyz(d, lambda got: got[0] == 503, 15)
        self.assertEqual(down[1]["status"], "unavailable")
        self.assertNotEqual(down[1]["store"], "ok")
        # While it is down every write is refused, quickly: the backoff answers.
        n = len(refused)
        time.sleep(1.0)
        self.assertGreater(len(refused), n, "writes were not answered while down")
        started = time.monotonic()
        status, _, body, raw = d.request("PUT", "/v1/devices/while-down", apns_device("x"))
        self.assertEqual(status, 503, raw)
        self.assertLess(time.monotonic() - started, 2.0)
        lost = d.find_log(lambda f: f.get("msg", "").startswith(
            "store connection to PostgreSQL lost"))
        # Once per connection (the writer's and the two readers'), not once per call.
        self.assertGreaterEqual(len(lost), 1)
        self.assertLessEqual(len(lost), 3)

        server.start(port=server.port)
        self.wait_readyz(d, lambda got: got == ready, 30)
        n = len(acked)
        deadline = time.monotonic() + 10
        while len(acked) == n and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreater(len(acked), n, "writes did not work again")
        stop.set()
        t.join(15)
        self.assertFalse(t.is_alive())
        self.assertEqual(others, [])
        self.assertGreater(len(refused), 0)
        back = d.find_log(lambda f: f.get("msg") == "store connection to PostgreSQL is back")
        self.assertGreaterEqual(len(back), 1)

        # Every acknowledged write is there, through the API and in the database.
        stored = {r["device_id"]: r["token"] for r in d.query(
            "SELECT device_id, token FROM devices WHERE client_id = 'outage'")}
        self.assertEqual([i for i, tok in acked if stored.get(i) != tok], [])
        for device_id, token in acked[:: max(1, len(acked) // 20)]:
            status, _, body, raw = d.request("GET", "/v1/devices/" + device_id)
            self.assertEqual(status, 200, raw)
            self.assertEqual(body["token"], token)
        self.assertEqual(d.request("GET", "/v1/devices/while-down")[0], 404)
        self.assertEqual(d.stop(), 0)

    def test_start_fails_while_postgresql_is_unreachable(self):
        d = self.new_daemon({"store": {
            "postgresql": "host=127.0.0.1 port=%d dbname=x user=u password=s3cr3t-pw "
                          "connect_timeout=2" % harness.free_port()}})
        d.start(wait=False)
        code = d.wait_exit(15)
        self.assertGreater(code, 0)
        text = d.log_text()
        self.assertIn("cannot connect to PostgreSQL", text)
        self.assertIn("password=(hidden)", text)
        self.assertFalse(d.secret_in_log("s3cr3t-pw"))


class ConfigTest(DaemonTestCase):

    def write(self, text):
        d = self.new_daemon(config_text=text)
        return d.config_path

    def test_postgresql_backend_needs_a_connection_string(self):
        path = self.write("[store]\nbackend = postgresql\n")
        code, _, err = run_pushrelayd(["-t", "-c", path])
        self.assertEqual(code, 1)
        self.assertIn("[store] backend = postgresql needs postgresql", err)

    def test_a_connection_string_that_does_not_parse_is_refused_without_its_password(self):
        path = self.write("[store]\nbackend = postgresql\n"
                          "postgresql = host=db password 'p4ss-w0rd\n")
        code, _, err = run_pushrelayd(["-t", "-c", path])
        self.assertEqual(code, 1)
        self.assertIn("[store] postgresql:", err)
        self.assertNotIn("p4ss-w0rd", err)

    def test_a_valid_connection_string_passes_the_check(self):
        path = self.write("[store]\nbackend = postgresql\n"
                          "postgresql = postgresql://relay:pw@db.example:5433/pushrelay\n")
        code, _, err = run_pushrelayd(["-t", "-c", path])
        self.assertEqual(code, 0, err)

    def test_the_password_of_the_connection_string_never_reaches_the_log(self):
        server = harness.postgres()
        db = server.create_database()
        d = self.start_daemon({"log": {"level": "debug"}, "store": {
            "backend": "postgresql",
            "postgresql": server.tcp_conninfo(db) + " password=n0t-in-the-l0g"}})
        status, _, _, raw = d.request("PUT", "/v1/devices/p1", apns_device("a"))
        self.assertEqual(status, 201, raw)
        self.assertEqual(d.stop(), 0)
        self.assertFalse(d.secret_in_log("n0t-in-the-l0g"))


class SharedDatabaseTest(DaemonTestCase):

    def test_two_daemons_on_one_database_see_each_others_writes(self):
        a = self.start_daemon()
        b = self.start_daemon({"store": {"postgresql": a.option("store", "postgresql")}})
        status, _, dev, raw = a.request("PUT", "/v1/devices/shared", apns_device("carol"))
        self.assertEqual(status, 201, raw)
        self.assertEqual(b.request("GET", "/v1/devices/shared")[2], dev)
        status, _, _, raw = b.request("PUT", "/v1/rooms/r1/members/carol")
        self.assertEqual(status, 201, raw)
        status, _, members, raw = a.request("GET", "/v1/rooms/r1/members")
        self.assertEqual([m["client_id"] for m in members["members"]], ["carol"])
        # Both migrated the same database once: one version row.
        self.assertEqual(a.query("SELECT count(*) AS n FROM pushrelay_schema")[0]["n"], 1)
        self.assertEqual(a.schema_version(), 5)


class RouteCacheAcrossInstancesTest(DaemonTestCase):
    """A membership written through one instance routes the next message another
    instance handles, although that one had the room's route cached."""

    @classmethod
    def setUpClass(cls):
        cls.certs, cls.tmp = mockctl.module_certs("pushrelay-pg-routes-")

    def test_a_member_added_through_a_routes_the_next_message_handled_by_b(self):
        mock = fixtures.apns_mock(self.certs)
        self.addCleanup(mock.stop)
        config = {"rooms": {"coalesce_window": "0"},
                  **fixtures.apns_section(self.certs, mock.url(""))}
        a = self.start_daemon(config)
        b = self.start_daemon(dict(config, store={
            "backend": "postgresql", "postgresql": a.option("store", "postgresql")}))
        b.wait_for_log(lambda x: x.get("msg") ==
                       "store watch listens for other instances' route changes")
        tokens = {}
        for client in ("bob", "carol"):
            tokens[client] = apns_token()
            body = dict(apns_device(client), app_id=fixtures.APP, token=tokens[client])
            status, _, _, raw = a.request("PUT", "/v1/devices/" + client, body)
            self.assertEqual(status, 201, raw)
        for client in ("alice", "bob"):
            status, _, _, raw = a.request("PUT", "/v1/rooms/r1/members/" + client)
            self.assertEqual(status, 201, raw)

        def post(daemon, mid):
            status, _, _, raw = daemon.request("POST", "/v1/events", {"events": [
                fixtures.message("r1", mid, "alice", "hello %s" % mid)]})
            self.assertEqual(status, 202, raw)

        def received(client):
            return [r for r in mock.requests() if r["path"] == "/3/device/" + tokens[client]]

        def wait(client, count):
            deadline = time.monotonic() + 10
            while len(received(client)) < count:
                self.assertLess(time.monotonic(), deadline, "%s got %d of %d:\n%s" % (
                    client, len(received(client)), count, b.log_text()))
                time.sleep(0.02)

        # B routes m1: r1's route (alice, bob) is in its cache now.
        post(b, "m1")
        wait("bob", 1)
        # Carol joins through A; B's next message of r1 reaches her too.
        status, _, _, raw = a.request("PUT", "/v1/rooms/r1/members/carol")
        self.assertEqual(status, 201, raw)
        # A's NOTIFY reaches B's watch a moment after A's commit: a message B routes
        # from then on reaches Carol. Each try is a new message (a resend would be a
        # duplicate); the first normally does.
        tries = 0
        deadline = time.monotonic() + 5
        while not received("carol"):
            self.assertLess(time.monotonic(), deadline, b.log_text())
            post(b, "m2-%d" % tries)
            tries += 1
            end = time.monotonic() + 1
            while not received("carol") and time.monotonic() < end:
                time.sleep(0.02)
        [first] = received("carol")
        self.assertEqual(first["status"], 200)
        self.assertEqual(json.loads(first["body"])["message_id"], "m2-%d" % (tries - 1))
        wait("bob", 1 + tries)

    def test_the_watch_comes_back_after_postgresql_restarts(self):
        a = self.start_daemon()
        a.wait_for_log(lambda x: x.get("msg") ==
                       "store watch listens for other instances' route changes")
        offset = a.log_offset()
        port = a.pg.port
        a.pg.stop()
        a.wait_for_log(lambda x: x.get("msg") == "store watch lost PostgreSQL: other "
                       "instances' route changes wait until it is back", since=offset,
                       timeout=15)
        a.pg.start(port)
        a.wait_for_log(lambda x: x.get("msg") == "store watch is back: routes are read again",
                       since=offset, timeout=30)


if __name__ == "__main__":
    harness.main()
