"""End-to-end delivery: POST /v1/push through the real pushrelayd to the mock APNs and FCM.

The daemon talks TLS + HTTP/2 to tests/mocks/mock_apns and mock_fcm on loopback (trusting
the CA that tests/gen-certs.sh makes), posts feedback events to a small HTTP server in this
process, and is checked on everything it shows: the requests the mocks recorded (path,
headers, provider token, exact body), GET /v1/push/{id}, the feedback webhook, the store and
the log. Device, client and room ids are unique per test, so the tests of a class share one
daemon and its mocks; rules are cleared before each test.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import (APP, DRY_RUN, EMAIL, FCM_SEND_PATH, KEY_ID,  # noqa: E402
                      MAX_ATTEMPTS, PROJECT, STATES, TEAM, UUID4_RE)
from harness import uid  # noqa: E402
from mockctl import jwt_decode, openssl_verifies, raw_to_der  # noqa: E402

ELLIPSIS = "\u2026"

CERTS = None
_TMP = None


def setUpModule():
    global CERTS, _TMP
    CERTS, _TMP = mockctl.module_certs("pushrelay-push-")


# ---- the feedback webhook ------------------------------------------------------------

class FeedbackServer:
    """An HTTP server on loopback that records every POST and answers 204."""

    def __init__(self):
        self.lock = threading.Lock()
        self.posts = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with recorder.lock:
                    recorder.posts.append({"path": self.path,
                                           "headers": {k.lower(): v for k, v
                                                       in self.headers.items()},
                                           "body": body})
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d/hooks/pushrelay" % self.port

    def events_for(self, device_id):
        with self.lock:
            return [p for p in self.posts if device_id.encode() in p["body"]]

    def wait_for(self, device_id, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            found = self.events_for(device_id)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# ---- a daemon with mocks -----------------------------------------------------------

class DeliveryCase(harness.DaemonTestCase):
    """One daemon per class, with the mocks the class asks for.

    apns: a production mock, and a second one as the sandbox; fcm: one mock serving both
    the send endpoint and the OAuth token endpoint; feedback: the webhook.
    """

    apns = False
    fcm = False
    feedback = False
    delivery = {}
    extra_config = {}

    @classmethod
    def setUpClass(cls):
        cls.apns_prod = cls.apns_sandbox = cls.fcm_mock = cls.hook = cls.daemon = None
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        config = {"delivery": fixtures.delivery_config(**cls.delivery)}
        if cls.apns:
            cls.apns_prod = fixtures.apns_mock(CERTS)
            cls.apns_sandbox = fixtures.apns_mock(CERTS)
            config.update(fixtures.apns_section(CERTS, cls.apns_prod.url(""),
                                                cls.apns_sandbox.url("")))
        if cls.fcm:
            cls.fcm_mock = fixtures.fcm_mock(CERTS)
            cls.token_uri = cls.fcm_mock.url("/token")
            account = fixtures.fcm_account(
                CERTS, os.path.join(_TMP, "sa-%s-%s.json" % (cls.__name__, uid())),
                cls.token_uri)
            config.update(fixtures.fcm_section(CERTS, account, cls.fcm_mock.url("")))
        if cls.feedback:
            cls.hook = FeedbackServer()
            config["delivery"]["feedback_url"] = cls.hook.url()
        for section, options in cls.extra_config.items():
            config.setdefault(section, {}).update(options)
        cls.daemon = harness.Daemon(config=config)
        cls.daemon.start()
        cls.started_at = time.time()

    @classmethod
    def tearDownClass(cls):
        problems = fixtures.stop_all(cls.daemon, (cls.apns_prod, cls.apns_sandbox, cls.fcm_mock))
        if cls.hook is not None:
            cls.hook.stop()
        if problems:
            raise AssertionError("\n".join(problems))

    def setUp(self):
        for mock in (self.apns_prod, self.apns_sandbox, self.fcm_mock):
            if mock is not None:
                mock.clear_rules()
        self.log_start = self.daemon.log_offset()

    # -- the API --

    def register(self, platform, client_id, device_id=None, **extra):
        """Register a new device; returns the stored device (token included)."""
        device_id = device_id or "%s-%s" % (platform, uid())
        if platform == "apns":
            body = harness.apns_device(client_id=client_id, **extra)
        else:
            body = harness.fcm_device(client_id=client_id, app_id=PROJECT, **extra)
        st, _, stored, raw = self.daemon.request(
            "PUT", "/v1/devices/" + harness.quote(device_id), body=body)
        self.assertEqual(st, 201, raw)
        self.assertEqual(stored["token"], body["token"])
        return stored

    def join(self, room_id, client_id):
        st, _, _, raw = self.daemon.request(
            "PUT", "/v1/rooms/%s/members/%s" % (harness.quote(room_id),
                                                harness.quote(client_id)))
        self.assertEqual(st, 201, raw)

    def push(self, recipients, notification, expect_devices=None):
        """POST /v1/push, which must answer 202; returns its body."""
        st, _, body, raw = self.daemon.request(
            "POST", "/v1/push", body={"recipients": recipients, "notification": notification})
        self.assertEqual(st, 202, raw)
        self.assertEqual(set(body), {"push_id", "devices", "unknown_device_ids"}, raw)
        self.assertRegex(body["push_id"], r"^[0-9a-f]{32}$")
        if expect_devices is not None:
            self.assertEqual(body["devices"], expect_devices, raw)
        return body

    def get_push(self, push_id):
        st, _, body, raw = self.daemon.request("GET", "/v1/push/" + push_id)
        self.assertEqual(st, 200, raw)
        return body

    def wait_finished(self, push_id, timeout=10.0):
        """Poll GET /v1/push/{id} until finished_at is set; the final answer."""
        return fixtures.wait_push_finished(self, self.daemon, push_id, timeout, self.log_start)

    def assertPushStatus(self, status, push_id, expected):
        """The finished status is exactly the expected rows.

        expected: {device_id: (device, state, reason, attempts)}, where device is the
        stored device (for client, platform, app); attempts None: at least 1.
        """
        self.assertEqual(set(status), {"push_id", "created_at", "finished_at", "counts",
                                       "devices"}, status)
        self.assertEqual(status["push_id"], push_id)
        self.assertTime(status["created_at"], near_ms=harness.now_ms())
        self.assertTime(status["finished_at"], near_ms=harness.now_ms())
        created = harness.time_to_ms(status["created_at"])
        self.assertGreaterEqual(harness.time_to_ms(status["finished_at"]), created)
        counts = dict.fromkeys(STATES, 0)
        for _, state, _, _ in expected.values():
            counts[state] += 1
        self.assertEqual(status["counts"], counts, status)
        got = {}
        for row in status["devices"]:
            self.assertNotIn(row["device_id"], got, "device listed twice: %s" % status)
            got[row["device_id"]] = row
        self.assertEqual(set(got), set(expected), status)
        want = {}
        for device_id, (device, state, reason, attempts) in expected.items():
            row = got.get(device_id, {})
            self.assertTime(row.get("updated_at"))
            self.assertGreaterEqual(harness.time_to_ms(row["updated_at"]), created)
            if attempts is None:
                self.assertGreaterEqual(row.get("attempts", 0), 1, row)
                attempts = row["attempts"]
            want[device_id] = {
                "device_id": device_id, "client_id": device["client_id"],
                "platform": device["platform"], "app_id": device["app_id"],
                "state": state, "reason": reason, "attempts": attempts,
                "updated_at": row["updated_at"]}
        self.assertEqual(got, want)

    # -- the mocks --

    def apns_records(self, token, mock=None):
        return fixtures.apns_records(mock or self.apns_prod, token)

    def fcm_records(self, token):
        return fixtures.fcm_records(self.fcm_mock, token)

    def assertExactJson(self, text, expected):
        """text is JSON, without duplicate keys, equal to expected."""
        def no_duplicates(pairs):
            keys = [k for k, _ in pairs]
            self.assertEqual(len(keys), len(set(keys)), "duplicate keys in %s" % text)
            return dict(pairs)
        self.assertEqual(json.loads(text, object_pairs_hook=no_duplicates), expected)

    def assertApnsJwt(self, authorization, not_before=None):
        """A bearer ES256 provider token for KEY_ID/TEAM that openssl verifies; its iat."""
        self.assertTrue(authorization.startswith("bearer "), authorization)
        header, claims, sig, signed = jwt_decode(authorization[len("bearer "):])
        self.assertEqual(header, {"alg": "ES256", "kid": KEY_ID})
        self.assertEqual(set(claims), {"iss", "iat"})
        self.assertEqual(claims["iss"], TEAM)
        self.assertIsInstance(claims["iat"], int)
        self.assertGreaterEqual(claims["iat"], int(not_before or self.started_at) - 2)
        self.assertLessEqual(claims["iat"], time.time() + 2)
        self.assertEqual(len(sig), 64, "ES256 signatures are r||s, 64 bytes")
        self.assertTrue(openssl_verifies(CERTS.apns_pub, signed, raw_to_der(sig)),
                        "the provider token's signature does not verify")
        return claims["iat"]

    def assertNoWholeSecret(self, *secrets):
        for secret in secrets:
            self.assertFalse(self.daemon.secret_in_log(secret),
                             "a whole token is in the log: %s" % secret)

    # -- the store --

    def device_row(self, device_id):
        return self.daemon.query("SELECT * FROM devices WHERE device_id = ?", (device_id,))

    def wait_last_success(self, device_id, timeout=3.0):
        """last_success_at of a device once it is set (successes are written each second)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.device_row(device_id)
            self.assertEqual(len(rows), 1, "device %s not in the store" % device_id)
            if rows[0]["last_success_at"] != 0 or time.monotonic() > deadline:
                return rows[0]["last_success_at"]
            time.sleep(0.05)

    def assertDeviceGone(self, device_id):
        st, _, _, raw = self.daemon.request("GET", "/v1/devices/" + harness.quote(device_id))
        self.assertEqual(st, 404, raw)
        self.assertEqual(self.device_row(device_id), [])

    def assertDeviceKept(self, device):
        st, _, body, raw = self.daemon.request(
            "GET", "/v1/devices/" + harness.quote(device["device_id"]))
        self.assertEqual(st, 200, raw)
        self.assertEqual(body["token"], device["token"])

    def push_counts(self):
        return (self.daemon.query("SELECT count(*) AS n FROM pushes")[0]["n"],
                self.daemon.query("SELECT count(*) AS n FROM push_devices")[0]["n"])


FULL_NOTIFICATION = {
    "title": "Support", "body": "agent: your parcel left the depot",
    "data": {"room": "support-1234", "event": "message"}, "badge": 2, "sound": "default",
    "thread_id": "support-1234", "collapse_id": "support-1234", "priority": "high",
    "ttl": 3600,
}

# What src/provider/payload.c makes of FULL_NOTIFICATION for APNs.
FULL_APNS_BODY = {
    "aps": {"alert": {"title": "Support", "body": "agent: your parcel left the depot"},
            "badge": 2, "sound": "default", "thread-id": "support-1234"},
    "room": "support-1234", "event": "message",
}


def full_fcm_body(token):
    """What src/provider/payload.c makes of FULL_NOTIFICATION for FCM."""
    return {"message": {
        "token": token,
        "notification": {"title": "Support", "body": "agent: your parcel left the depot"},
        "data": {"room": "support-1234", "event": "message"},
        "android": {"priority": "HIGH", "ttl": "3600s", "collapse_key": "support-1234",
                    "notification": {"tag": "support-1234", "sound": "default",
                                     "notification_count": 2}},
        "apns": {"headers": {"apns-priority": "10", "apns-collapse-id": "support-1234"},
                 "payload": {"aps": {"badge": 2, "sound": "default",
                                     "thread-id": "support-1234"}}},
    }}


# ---- a daemon without credentials: the dry run --------------------------------------

class TestDryRun(DeliveryCase):

    def test_without_provider_sections_deliveries_are_logged_and_reported_sent(self):
        client = "dry-" + uid()
        a = self.register("apns", client)
        f = self.register("fcm", client)
        accepted = self.push({"client_ids": [client]}, FULL_NOTIFICATION, expect_devices=2)
        self.assertEqual(accepted["unknown_device_ids"], [])
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "sent", DRY_RUN, 1),
            f["device_id"]: (f, "sent", DRY_RUN, 1)})

        lines = {ln["device_id"]: ln for ln in self.daemon.find_log(
            lambda x: x.get("msg") == "dry run: would send", since=self.log_start)}
        self.assertEqual(set(lines), {a["device_id"], f["device_id"]})
        la, lf = lines[a["device_id"]], lines[f["device_id"]]
        self.assertEqual((la["level"], la["platform"], la["app_id"], la["environment"],
                          la["client_id"]), ("info", "apns", APP, "production", client))
        self.assertEqual((lf["level"], lf["platform"], lf["app_id"], lf["client_id"]),
                         ("info", "fcm", PROJECT, client))
        self.assertRegex(la["id"], UUID4_RE)
        self.assertRegex(lf["id"], UUID4_RE)
        self.assertNotEqual(la["id"], lf["id"])
        self.assertExactJson(la["payload"], FULL_APNS_BODY)
        # The FCM message names its recipient; the log must not show the whole token.
        for line, device in ((la, a), (lf, f)):
            self.assertEqual(line["token"], "%s\u2026(%d)" % (device["token"][:8],
                                                            len(device["token"])))
        self.assertExactJson(lf["payload"], full_fcm_body(lf["token"]))
        self.assertNoWholeSecret(a["token"], f["token"])
        self.assertNotEqual(self.wait_last_success(a["device_id"]), 0)


# ---- APNs and FCM ----------------------------------------------------------------------

class TestDelivery(DeliveryCase):

    apns = True
    fcm = True
    feedback = True

    # -- APNs --

    def test_apns_success_sends_exact_headers_body_and_provider_token(self):
        client = "alice-" + uid()
        a = self.register("apns", client)
        before = harness.now_ms()
        accepted = self.push({"client_ids": [client]}, FULL_NOTIFICATION, expect_devices=1)
        status = self.wait_finished(accepted["push_id"])

        [rec] = self.apns_records(a["token"])
        self.assertEqual(self.apns_records(a["token"], self.apns_sandbox), [])
        self.assertEqual((rec["method"], rec["authority"], rec["status"]),
                         ("POST", "127.0.0.1:%d" % self.apns_prod.h2_port, 200))
        headers = dict(rec["headers"])
        if "content-length" in headers:
            self.assertEqual(headers.pop("content-length"), str(rec["body_length"]))
        created_s = harness.time_to_ms(status["created_at"]) // 1000
        self.assertEqual(headers, {
            "apns-topic": APP, "apns-push-type": "alert", "apns-priority": "10",
            "apns-expiration": str(created_s + 3600), "apns-collapse-id": "support-1234",
            "apns-id": headers.get("apns-id"), "authorization": headers.get("authorization")})
        self.assertRegex(headers["apns-id"], UUID4_RE)
        self.assertNotIn(headers["apns-id"].replace("-", ""), (accepted["push_id"],))
        self.assertApnsJwt(headers["authorization"])
        self.assertExactJson(rec["body"], FULL_APNS_BODY)
        self.assertEqual(rec["body_length"], len(rec["body"].encode()))

        self.assertPushStatus(status, accepted["push_id"], {a["device_id"]: (a, "sent", None, 1)})
        success = self.wait_last_success(a["device_id"])
        self.assertTrue(before <= success <= harness.now_ms(), success)
        st, _, device, _ = self.daemon.request("GET", "/v1/devices/" + a["device_id"])
        self.assertEqual(st, 200)
        self.assertEqual(harness.time_to_ms(device["last_success_at"]), success)
        self.assertNoWholeSecret(a["token"])

    def test_apns_silent_push_is_background_priority_5_without_expiration(self):
        client = "bg-" + uid()
        a = self.register("apns", client)
        accepted = self.push({"device_ids": [a["device_id"]]},
                             {"content_available": True, "data": {"sync": "1"}})
        status = self.wait_finished(accepted["push_id"])
        [rec] = self.apns_records(a["token"])
        headers = dict(rec["headers"])
        headers.pop("content-length", None)
        self.assertEqual(headers, {
            "apns-topic": APP, "apns-push-type": "background", "apns-priority": "5",
            "apns-id": headers.get("apns-id"), "authorization": headers.get("authorization")})
        self.assertExactJson(rec["body"], {"aps": {"content-available": 1}, "sync": "1"})
        self.assertPushStatus(status, accepted["push_id"], {a["device_id"]: (a, "sent", None, 1)})

    def test_apns_sandbox_device_goes_to_sandbox_url(self):
        client = "env-" + uid()
        prod = self.register("apns", client)
        sandbox = self.register("apns", client, environment="sandbox")
        accepted = self.push({"client_ids": [client]}, {"body": "hello"}, expect_devices=2)
        status = self.wait_finished(accepted["push_id"])
        self.assertEqual(len(self.apns_records(prod["token"], self.apns_prod)), 1)
        self.assertEqual(self.apns_records(prod["token"], self.apns_sandbox), [])
        [rec] = self.apns_records(sandbox["token"], self.apns_sandbox)
        self.assertEqual(self.apns_records(sandbox["token"], self.apns_prod), [])
        self.assertEqual(rec["authority"], "127.0.0.1:%d" % self.apns_sandbox.h2_port)
        self.assertExactJson(rec["body"], {"aps": {"alert": {"body": "hello"}}})
        self.assertPushStatus(status, accepted["push_id"], {
            prod["device_id"]: (prod, "sent", None, 1),
            sandbox["device_id"]: (sandbox, "sent", None, 1)})

    def test_room_fan_out_excludes_clients_dedups_devices_and_reports_unknown_ids(self):
        u = uid()
        room = "room-" + u
        c1, c2, c3 = "c1-" + u, "c2-" + u, "c3-" + u
        a1, f1 = self.register("apns", c1), self.register("fcm", c1)
        a2, f2 = self.register("apns", c2), self.register("fcm", c2)
        a3 = self.register("apns", c3)
        for c in (c1, c2, c3):
            self.join(room, c)
        unknown = "nobody-" + u
        # a1 is named by device, by its client and through the room: one notification.
        accepted = self.push({"room_id": room, "client_ids": [c1],
                              "device_ids": [a1["device_id"], unknown, a1["device_id"]],
                              "exclude_client_ids": [c3]},
                             {"title": "Room", "body": "news"}, expect_devices=4)
        self.assertEqual(accepted["unknown_device_ids"], [unknown])
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a1["device_id"]: (a1, "sent", None, 1), f1["device_id"]: (f1, "sent", None, 1),
            a2["device_id"]: (a2, "sent", None, 1), f2["device_id"]: (f2, "sent", None, 1)})
        r1, r2 = self.apns_records(a1["token"]), self.apns_records(a2["token"])
        self.assertEqual((len(r1), len(r2)), (1, 1))
        self.assertEqual(self.apns_records(a3["token"]), [])
        self.assertEqual(self.apns_records(a3["token"], self.apns_sandbox), [])
        self.assertNotEqual(r1[0]["headers"]["apns-id"], r2[0]["headers"]["apns-id"])
        self.assertEqual((len(self.fcm_records(f1["token"])), len(self.fcm_records(f2["token"]))),
                         (1, 1))

    def test_apns_410_unregistered_after_registration_removes_device_and_posts_feedback(self):
        client = "gone-" + uid()
        a = self.register("apns", client)
        registered = harness.time_to_ms(a["updated_at"])
        self.apns_prod.add_rule(token=a["token"], status=410, reason="Unregistered",
                                timestamp=registered + 1000)
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "token_removed", "Unregistered", 1)})
        self.assertEqual([r["status"] for r in self.apns_records(a["token"])], [410])
        self.assertDeviceGone(a["device_id"])

        [event] = self.hook.wait_for(a["device_id"])
        self.assertEqual(event["path"], "/hooks/pushrelay")
        self.assertTrue(event["headers"].get("content-type", "").startswith(
            "application/json"), event["headers"])
        body = json.loads(event["body"])
        self.assertTime(body.get("at"), near_ms=harness.now_ms(), slack_ms=10000)
        self.assertEqual(body, {"event": "token_removed", "device_id": a["device_id"],
                                "client_id": client, "platform": "apns", "app_id": APP,
                                "reason": "Unregistered", "at": body["at"]})
        [line] = self.daemon.find_log(lambda x: x.get("msg") == "token removed" and
                                      x.get("device_id") == a["device_id"],
                                      since=self.log_start)
        self.assertEqual((line["level"], line["client_id"], line["platform"], line["app_id"],
                          line["reason"]), ("info", client, "apns", APP, "Unregistered"))
        self.assertNoWholeSecret(a["token"])

    def test_apns_410_before_reregistration_keeps_device(self):
        client = "back-" + uid()
        a = self.register("apns", client)
        first = harness.time_to_ms(a["updated_at"])
        time.sleep(0.05)
        st, _, again, raw = self.daemon.request(
            "PUT", "/v1/devices/" + a["device_id"],
            body=harness.apns_device(client_id=client, token=a["token"]))
        self.assertEqual(st, 200, raw)
        second = harness.time_to_ms(again["updated_at"])
        self.assertGreater(second, first + 20)
        # APNs saw the token invalid between the two registrations.
        self.apns_prod.add_rule(token=a["token"], status=410, reason="Unregistered",
                                timestamp=second - 10)
        accepted = self.push({"device_ids": [a["device_id"]]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "failed",
                             "Unregistered (device kept: registered again since)", 1)})
        self.assertEqual(len(self.apns_records(a["token"])), 1)
        self.assertDeviceKept(a)
        time.sleep(0.3)
        self.assertEqual(self.hook.events_for(a["device_id"]), [])

    def test_apns_400_bad_device_token_removes_device(self):
        # Refused in both environments (tried once in the other first): removed.
        client = "bad-" + uid()
        a = self.register("apns", client)
        self.apns_prod.add_rule(token=a["token"], status=400, reason="BadDeviceToken")
        self.apns_sandbox.add_rule(token=a["token"], status=400, reason="BadDeviceToken")
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "token_removed", "BadDeviceToken", 2)})
        self.assertEqual(len(self.apns_records(a["token"])), 1)
        self.assertEqual(len(self.apns_records(a["token"], self.apns_sandbox)), 1)
        self.assertDeviceGone(a["device_id"])
        [event] = self.hook.wait_for(a["device_id"])
        body = json.loads(event["body"])
        self.assertEqual(body, {"event": "token_removed", "device_id": a["device_id"],
                                "client_id": client, "platform": "apns", "app_id": APP,
                                "reason": "BadDeviceToken", "at": body.get("at")})
        self.assertTime(body["at"], near_ms=harness.now_ms(), slack_ms=10000)

    def test_apns_token_of_the_other_environment_is_sent_there_and_the_device_corrected(self):
        # A development build's token registered as production: APNs production says
        # BadDeviceToken, the sandbox takes it; the device is corrected and logged.
        client = "env-" + uid()
        a = self.register("apns", client)
        self.assertEqual(a["environment"], "production")
        self.apns_prod.add_rule(token=a["token"], status=400, reason="BadDeviceToken")
        offset = self.daemon.log_offset()
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "sent", None, 2)})
        self.assertEqual([r["status"] for r in self.apns_records(a["token"])], [400])
        self.assertEqual([r["status"] for r in self.apns_records(a["token"],
                                                                 self.apns_sandbox)], [200])
        self.daemon.wait_for_log(lambda x: x.get("msg") == "apns device environment "
                                 "corrected", since=offset)
        [switch] = self.daemon.find_log(lambda x: x.get("msg") == "apns token refused in "
                                        "its environment: trying the other", since=offset)
        self.assertEqual((switch["device_id"], switch["from"], switch["to"]),
                         (a["device_id"], "production", "sandbox"))
        st, _, stored, raw = self.daemon.request("GET", "/v1/devices/" + a["device_id"])
        self.assertEqual((st, stored["environment"]), (200, "sandbox"), raw)
        self.assertEqual(stored["token"], a["token"])
        # The next push goes to the sandbox at once.
        accepted = self.push({"client_ids": [client]}, {"body": "again"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (dict(a, environment="sandbox"), "sent", None, 1)})
        self.assertEqual(len(self.apns_records(a["token"])), 1)
        self.assertEqual(len(self.apns_records(a["token"], self.apns_sandbox)), 2)
        metrics = self.daemon.request("GET", "/metrics")[3].decode()
        self.assertRegex(metrics, r"(?m)^pushrelay_apns_environment_corrections_total [1-9]")

    def test_apns_environment_fallback_off_removes_the_device_at_once(self):
        client = "envoff-" + uid()
        a = self.register("apns", client)
        self.apns_prod.add_rule(token=a["token"], status=400, reason="BadDeviceToken")
        text = self.daemon.config_text()
        self.daemon.reload(self.daemon.config_text(
            {"delivery": {"apns_environment_fallback": "no"}}))
        try:
            accepted = self.push({"client_ids": [client]}, {"body": "hi"})
            status = self.wait_finished(accepted["push_id"])
            self.assertPushStatus(status, accepted["push_id"], {
                a["device_id"]: (a, "token_removed", "BadDeviceToken", 1)})
            self.assertEqual(self.apns_records(a["token"], self.apns_sandbox), [])
        finally:
            self.daemon.reload(text)

    def test_apns_device_token_not_for_topic_fails_once_and_keeps_device(self):
        client = "topic-" + uid()
        a = self.register("apns", client)
        # The mock answers DeviceTokenNotForTopic itself: the token belongs to another app.
        self.apns_prod.add_rule(token=a["token"], topic="com.example.other")
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "failed", "DeviceTokenNotForTopic", 1)})
        self.assertEqual([(r["status"], r.get("reason")) for r in self.apns_records(a["token"])],
                         [(400, "DeviceTokenNotForTopic")])
        self.assertDeviceKept(a)
        time.sleep(0.3)
        self.assertEqual(len(self.apns_records(a["token"])), 1, "retried a final answer")
        self.assertEqual(self.hook.events_for(a["device_id"]), [])

    def test_apns_403_invalid_provider_token_fails_once_and_logs_configuration_error(self):
        client = "cfg-" + uid()
        a = self.register("apns", client)
        self.apns_prod.add_rule(token=a["token"], status=403, reason="InvalidProviderToken")
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "failed", "InvalidProviderToken", 1)})
        self.assertDeviceKept(a)
        time.sleep(0.3)
        self.assertEqual(len(self.apns_records(a["token"])), 1, "retried a final answer")
        lines = self.daemon.find_log(lambda x: x.get("msg") == "apns refuses our configuration"
                                     and x.get("reason") == "InvalidProviderToken",
                                     since=self.log_start)
        self.assertEqual([(x["level"], x["app"], x["status"]) for x in lines],
                         [("error", APP, "403")])

    def test_apns_429_is_retried_after_retry_after(self):
        client = "busy-" + uid()
        a = self.register("apns", client)
        self.apns_prod.add_rule(token=a["token"], status=429, reason="TooManyRequests",
                                retry_after=1, times=1)
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        deadline = time.monotonic() + 5
        while not self.apns_records(a["token"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        middle = self.get_push(accepted["push_id"])
        if middle["finished_at"] is None:
            [row] = middle["devices"]
            self.assertIn((row["state"], row["reason"], row["attempts"]),
                          [("sending", None, 1), ("retrying", "TooManyRequests", 1)])
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {a["device_id"]: (a, "sent", None, 2)})
        recs = self.apns_records(a["token"])
        self.assertEqual([r["status"] for r in recs], [429, 200])
        self.assertGreaterEqual(recs[1]["time_ms"] - recs[0]["time_ms"], 950,
                                "Retry-After: 1 not honoured")

    def test_apns_500_gives_up_after_max_attempts(self):
        client = "down-" + uid()
        a = self.register("apns", client)
        self.apns_prod.add_rule(token=a["token"], status=500, reason="InternalServerError")
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            a["device_id"]: (a, "failed", "gave up after %d attempts: InternalServerError"
                             % MAX_ATTEMPTS, MAX_ATTEMPTS)})
        self.assertEqual([r["status"] for r in self.apns_records(a["token"])],
                         [500] * MAX_ATTEMPTS)
        self.assertDeviceKept(a)

    def test_apns_expired_provider_token_is_retried_with_a_new_jwt(self):
        # A token minted in the same second as the daemon's first one would carry the same
        # claims; let a second pass so the renewed token must have a later iat.
        time.sleep(max(0.0, self.started_at + 1.1 - time.time()))
        client = "jwt-" + uid()
        a = self.register("apns", client)
        self.apns_prod.add_rule(token=a["token"], status=403, reason="ExpiredProviderToken",
                                times=1)
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {a["device_id"]: (a, "sent", None, 2)})
        recs = self.apns_records(a["token"])
        self.assertEqual([(r["status"], r.get("reason")) for r in recs],
                         [(403, "ExpiredProviderToken"), (200, None)])
        old, new = (r["headers"]["authorization"] for r in recs)
        self.assertNotEqual(old, new)
        self.assertGreater(self.assertApnsJwt(new), self.assertApnsJwt(old))
        self.daemon.wait_for_log(lambda x: x.get("msg") == "apns provider token renewed" and
                                 x.get("why") == "ExpiredProviderToken", since=self.log_start)
        # The new token is the app's from now on.
        b = self.register("apns", client)
        accepted = self.push({"device_ids": [b["device_id"]]}, {"body": "again"})
        self.wait_finished(accepted["push_id"])
        [rec] = self.apns_records(b["token"])
        self.assertEqual(rec["headers"]["authorization"], new)

    def test_apns_long_body_is_shortened_with_an_ellipsis_to_fit_4096_bytes(self):
        client = "long-" + uid()
        a = self.register("apns", client)
        text = "ab\u20ac" * 819                         # 4095 bytes, 3-byte characters
        self.assertEqual(len(text.encode()), 4095)
        notification = {"title": "Long", "body": text, "data": {"pad": "p" * 200}}
        accepted = self.push({"client_ids": [client]}, notification)
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {a["device_id"]: (a, "sent", None, 1)})
        [rec] = self.apns_records(a["token"])
        raw = rec["body"].encode()
        self.assertLessEqual(len(raw), 4096)
        self.assertEqual(rec["body_length"], len(raw))
        body = json.loads(rec["body"])
        alert = body["aps"]["alert"]
        self.assertEqual((alert["title"], body["pad"]), ("Long", "p" * 200))
        self.assertTrue(alert["body"].endswith(ELLIPSIS), alert["body"][-20:])
        kept = alert["body"][:-1]
        self.assertTrue(text.startswith(kept), "not a prefix of the original")
        self.assertLess(len(kept), len(text))
        # The longest prefix that fits: one more character would not.
        self.assertGreater(len(raw) + len(text[len(kept)].encode()), 4096)

    def test_apns_data_too_large_even_with_body_shortened_is_refused(self):
        client = "huge-" + uid()
        a = self.register("apns", client)
        f = self.register("fcm", client)
        before = self.push_counts()
        data = {"blob": "x" * 4100}
        for who, platform in ((a, "APNs"), (f, "FCM")):
            with self.subTest(platform):
                r = self.daemon.request("POST", "/v1/push", body={
                    "recipients": {"device_ids": [who["device_id"]]},
                    "notification": {"body": "hi", "data": data}})
                self.assertErrorBody(r, 400, "invalid_field",
                                     "notification: payload too large even with the body "
                                     "shortened for %s" % platform, "notification")
        self.assertEqual(self.push_counts(), before)
        self.assertEqual(self.apns_records(a["token"]), [])
        self.assertEqual(self.fcm_records(f["token"]), [])

    # -- FCM --

    def test_fcm_exchanges_a_service_account_token_then_sends_the_exact_message(self):
        client = "droid-" + uid()
        f = self.register("fcm", client)
        accepted = self.push({"client_ids": [client]}, FULL_NOTIFICATION, expect_devices=1)
        status = self.wait_finished(accepted["push_id"])

        all_records = self.fcm_mock.requests()
        exchanges = [r for r in all_records if r["path"] == "/token"]
        self.assertGreaterEqual(len(exchanges), 1)
        ex = exchanges[0]
        self.assertEqual((ex["method"], ex["status"],
                          ex["headers"].get("content-type")),
                         ("POST", 200, "application/x-www-form-urlencoded"))
        form = urllib.parse.parse_qs(ex["body"], strict_parsing=True)
        self.assertEqual(set(form), {"grant_type", "assertion"})
        self.assertEqual(form["grant_type"], [mockctl.JWT_BEARER])
        header, claims, sig, signed = jwt_decode(form["assertion"][0])
        self.assertEqual(header, {"alg": "RS256", "typ": "JWT", "kid": "mock-key-1"})
        self.assertEqual(set(claims), {"iss", "scope", "aud", "iat", "exp"})
        self.assertEqual((claims["iss"], claims["scope"], claims["aud"]),
                         (EMAIL, mockctl.FCM_SCOPE, self.token_uri))
        self.assertEqual(claims["exp"] - claims["iat"], 3600)
        self.assertTrue(openssl_verifies(CERTS.fcm_pub, signed, sig))

        [rec] = self.fcm_records(f["token"])
        self.assertLess(ex["seq"], rec["seq"])
        self.assertEqual((rec["method"], rec["path"], rec["status"]),
                         ("POST", FCM_SEND_PATH, 200))
        headers = dict(rec["headers"])
        if "content-length" in headers:
            self.assertEqual(headers.pop("content-length"), str(rec["body_length"]))
        self.assertEqual(set(headers), {"content-type", "authorization"}, headers)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertRegex(headers["authorization"], r"^Bearer ya29\.mock-[0-9a-f]{32}$")
        self.assertExactJson(rec["body"], full_fcm_body(f["token"]))
        self.assertNotEqual(self.wait_last_success(f["device_id"]), 0)
        self.assertNoWholeSecret(f["token"])
        self.assertPushStatus(status, accepted["push_id"], {f["device_id"]: (f, "sent", None, 1)})

    def test_fcm_404_unregistered_removes_device_and_posts_feedback(self):
        client = "fgone-" + uid()
        f = self.register("fcm", client)
        self.fcm_mock.add_rule(token=f["token"], status=404, error_code="UNREGISTERED")
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            f["device_id"]: (f, "token_removed", "UNREGISTERED", 1)})
        self.assertEqual([r["status"] for r in self.fcm_records(f["token"])], [404])
        self.assertDeviceGone(f["device_id"])
        [event] = self.hook.wait_for(f["device_id"])
        body = json.loads(event["body"])
        self.assertEqual(body, {"event": "token_removed", "device_id": f["device_id"],
                                "client_id": client, "platform": "fcm", "app_id": PROJECT,
                                "reason": "UNREGISTERED", "at": body.get("at")})
        self.assertTime(body["at"], near_ms=harness.now_ms(), slack_ms=10000)
        self.assertNoWholeSecret(f["token"])

    def test_fcm_429_is_retried_after_retry_after(self):
        client = "fbusy-" + uid()
        f = self.register("fcm", client)
        self.fcm_mock.add_rule(token=f["token"], status=429, retry_after=1, times=1)
        accepted = self.push({"client_ids": [client]}, {"body": "hi"})
        status = self.wait_finished(accepted["push_id"])
        recs = self.fcm_records(f["token"])
        self.assertEqual([r["status"] for r in recs], [429, 200])
        self.assertGreaterEqual(recs[1]["time_ms"] - recs[0]["time_ms"], 950,
                                "Retry-After: 1 not honoured")
        self.assertPushStatus(status, accepted["push_id"], {f["device_id"]: (f, "sent", None, 2)})


# ---- GOAWAY in the middle of a batch ------------------------------------------------

class TestGoaway(DeliveryCase):

    apns = True
    extra_config = {"store": {"synchronous": "normal"}}

    def test_goaway_mid_batch_sends_every_notification_exactly_once(self):
        u = uid()
        client = "bulk-" + u
        devices = [self.register("apns", client, device_id="gw-%s-%03d" % (u, i))
                   for i in range(200)]
        tokens = {d["token"] for d in devices}
        # Every answer waits, so that many streams are open when the GOAWAY comes; the
        # request for the 101st device (in the daemon's order, by device id) makes the
        # mock refuse it and every later stream on its connection.
        self.apns_prod.add_rules([
            {"token": devices[100]["token"], "action": "goaway", "times": 1},
            {"delay_ms": 300}])
        accepted = self.push({"client_ids": [client]}, {"body": "bulk"}, expect_devices=200)
        status = self.wait_finished(accepted["push_id"], timeout=20)

        records = [r for r in self.apns_prod.requests()
                   if r["path"][len("/3/device/"):] in tokens]
        [goaway] = [r for r in records if r.get("action") == "goaway"]
        self.assertEqual(goaway["path"], "/3/device/" + devices[100]["token"])
        last_processed = goaway["stream"] - 2

        def refused(r):
            return r["connection"] == goaway["connection"] and r["stream"] > last_processed

        processed = {}
        for r in records:
            if r["status"] == 200 and "action" not in r and not refused(r):
                processed.setdefault(r["path"], []).append(r["seq"])
        twice = {p: s for p, s in processed.items() if len(s) != 1}
        self.assertEqual(twice, {}, "tokens processed more than once")
        self.assertEqual(set(processed), {"/3/device/" + t for t in tokens},
                         "tokens never processed")
        refused_paths = {r["path"] for r in records if refused(r)}
        self.assertGreaterEqual(len(refused_paths), 2,
                                "the GOAWAY came after the batch, not in its middle")
        for r in records:
            if refused(r):
                [seq] = processed[r["path"]]
                self.assertGreater(seq, r["seq"])
        self.assertPushStatus(status, accepted["push_id"], {
            d["device_id"]: (d, "sent", None, None) for d in devices})
        by_id = {row["device_id"]: row for row in status["devices"]}
        for d in devices:
            if "/3/device/" + d["token"] not in refused_paths:
                self.assertEqual(by_id[d["device_id"]]["attempts"], 1, d["device_id"])


# ---- kill -9 with sends in flight -----------------------------------------------------

class TestKill9(DeliveryCase):

    apns = True

    def test_accepted_push_survives_kill_9_and_is_delivered_after_restart(self):
        u = uid()
        client = "k9-" + u
        devices = [self.register("apns", client, device_id="k9-%s-%02d" % (u, i))
                   for i in range(20)]
        self.apns_prod.add_rule(delay_ms=3000)
        accepted = self.push({"client_ids": [client]}, {"body": "durable"}, expect_devices=20)
        # Kill once every send is in flight: APNs has them, the daemon has no answer yet.
        paths = {"/3/device/" + d["token"] for d in devices}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if len({r["path"] for r in self.apns_prod.requests()} & paths) == len(paths):
                break
            time.sleep(0.01)
        self.daemon.kill9()
        self.apns_prod.clear_rules()
        last_seq_before = max([r["seq"] for r in self.apns_prod.requests()] or [0])
        self.daemon.start()
        resumed = self.daemon.wait_for_log(lambda x: x.get("msg") == "resumed push" and
                                           x.get("push_id") == accepted["push_id"],
                                           since=self.log_start)
        self.assertEqual(resumed["deliveries"], "20")
        status = self.wait_finished(accepted["push_id"])
        self.assertPushStatus(status, accepted["push_id"], {
            d["device_id"]: (d, "sent", None, None) for d in devices})
        # At least once: a send in flight at the kill may have reached APNs (here the mock
        # recorded it but never answered), and the restarted daemon cannot know, so it sends
        # again. After the restart each token is sent exactly once.
        records = self.apns_prod.requests()
        for d in devices:
            mine = [r for r in records if r["path"] == "/3/device/" + d["token"]]
            after = [r for r in mine if r["seq"] > last_seq_before]
            self.assertEqual(len(mine) - len(after), 1, "not in flight at the kill")
            self.assertEqual([r["status"] for r in after], [200], d["device_id"])


# ---- a full delivery queue --------------------------------------------------------------

class TestQueueFull(DeliveryCase):

    apns = True
    delivery = {"queue_size": "100"}
    extra_config = {"store": {"synchronous": "normal"}}

    QUEUE_FULL = "the delivery queue is full; retry later"

    def assertQueueFull(self, result):
        self.assertErrorBody(result, 503, "unavailable", self.QUEUE_FULL)
        self.assertRegex(result[1].get("retry-after", ""), r"^[1-9][0-9]*$")

    def test_push_beyond_the_queue_is_refused_with_503_and_stores_nothing(self):
        u = uid()
        many, more = "many-" + u, "more-" + u
        first = [self.register("apns", many, device_id="qa-%s-%03d" % (u, i))
                 for i in range(100)]
        rest = [self.register("apns", more, device_id="qb-%s-%02d" % (u, i))
                for i in range(50)]
        before = self.push_counts()
        # 150 deliveries never fit in a queue of 100.
        self.assertQueueFull(self.daemon.request("POST", "/v1/push", body={
            "recipients": {"client_ids": [many, more]}, "notification": {"body": "x"}}))
        self.assertEqual(self.push_counts(), before)

        # 100 fill it while APNs is slow; one more does not fit until they are done.
        self.apns_prod.add_rule(delay_ms=2000)
        accepted = self.push({"client_ids": [many]}, {"body": "slow"}, expect_devices=100)
        before = self.push_counts()
        self.assertQueueFull(self.daemon.request("POST", "/v1/push", body={
            "recipients": {"device_ids": [rest[0]["device_id"]]},
            "notification": {"body": "x"}}))
        self.assertEqual(self.push_counts(), before)
        self.assertEqual(self.apns_records(rest[0]["token"]), [])
        status = self.wait_finished(accepted["push_id"], timeout=15)
        self.assertPushStatus(status, accepted["push_id"], {
            d["device_id"]: (d, "sent", None, 1) for d in first})
        self.apns_prod.clear_rules()
        again = self.push({"device_ids": [rest[0]["device_id"]]}, {"body": "x"},
                          expect_devices=1)
        self.wait_finished(again["push_id"])


# ---- validation ------------------------------------------------------------------------

class TestValidation(DeliveryCase):

    def test_invalid_push_requests_get_exact_400_errors_and_store_nothing(self):
        client = "v-" + uid()
        a = self.register("apns", client)
        f = self.register("fcm", client)
        ok_recipients = {"client_ids": [client]}
        ok_notification = {"body": "hi"}
        on = "notification."
        cases = [
            # (what, body, code, message, field)
            ("no recipients", {"notification": ok_notification}, "missing_field",
             "recipients: is required", "recipients"),
            ("recipients not an object", {"recipients": [client],
                                          "notification": ok_notification},
             "invalid_field", "recipients: must be an object", "recipients"),
            ("empty recipients", {"recipients": {}, "notification": ok_notification},
             "missing_field", "recipients: needs client_ids, device_ids or room_id",
             "recipients"),
            ("empty lists", {"recipients": {"client_ids": [], "device_ids": []},
                             "notification": ok_notification},
             "missing_field", "recipients: needs client_ids, device_ids or room_id",
             "recipients"),
            ("ids not a list", {"recipients": {"client_ids": client},
                                "notification": ok_notification},
             "invalid_field", "recipients.client_ids: must be an array of ids",
             "recipients.client_ids"),
            ("id not a string", {"recipients": {"device_ids": [1]},
                                 "notification": ok_notification},
             "invalid_field", "recipients.device_ids: must be an array of ids",
             "recipients.device_ids"),
            ("empty id", {"recipients": {"device_ids": [""]}, "notification": ok_notification},
             "invalid_field", "recipients.device_ids: must not be empty",
             "recipients.device_ids"),
            ("long id", {"recipients": {"client_ids": [client],
                                        "exclude_client_ids": ["x" * 129]},
                         "notification": ok_notification},
             "invalid_field", "recipients.exclude_client_ids: must be at most 128 bytes",
             "recipients.exclude_client_ids"),
            ("control character", {"recipients": {"client_ids": ["a\u0001b"]},
                                   "notification": ok_notification},
             "invalid_field", "recipients.client_ids: must not contain control characters",
             "recipients.client_ids"),
            ("too many ids", {"recipients": {"client_ids": ["c%d" % i for i in range(1001)]},
                              "notification": ok_notification},
             "invalid_field", "recipients.client_ids: must have at most 1000 ids",
             "recipients.client_ids"),
            ("room not a string", {"recipients": {"room_id": 5},
                                   "notification": ok_notification},
             "invalid_field", "recipients.room_id: must be a string", "recipients.room_id"),
            ("empty room", {"recipients": {"room_id": ""}, "notification": ok_notification},
             "invalid_field", "recipients.room_id: must not be empty", "recipients.room_id"),
            ("unknown field", {"recipients": ok_recipients, "notification": ok_notification,
                               "priority": "high"},
             "invalid_field", "priority: unknown field", "priority"),
            ("unknown recipients field", {"recipients": {"client_ids": [client],
                                                         "user_ids": ["x"]},
                                          "notification": ok_notification},
             "invalid_field", "recipients.user_ids: unknown field", "recipients.user_ids"),
            ("no notification", {"recipients": ok_recipients}, "missing_field",
             "notification: is required", "notification"),
            ("notification not an object", {"recipients": ok_recipients,
                                            "notification": "hi"},
             "invalid_field", "notification: must be an object", "notification"),
        ]
        bad_notifications = [
            ("unknown notification field", {"body": "x", "colour": "red"},
             "colour: unknown field", "colour"),
            ("nothing to show", {"sound": "default"},
             "body: is required unless there is a title, or the notification is silent "
             "(content_available or data)", "body"),
            ("title not a string", {"title": 5}, "title: must be a string", "title"),
            ("body too long", {"body": "b" * 4097}, "body: must be at most 4096 bytes", "body"),
            ("negative badge", {"body": "x", "badge": -1},
             "badge: must be an integer from 0 to 999999", "badge"),
            ("badge a string", {"body": "x", "badge": "2"},
             "badge: must be an integer from 0 to 999999", "badge"),
            ("priority", {"body": "x", "priority": "urgent"},
             "priority: must be one of: high, normal", "priority"),
            ("ttl", {"body": "x", "ttl": 2419201},
             "ttl: must be an integer from 0 to 2419200", "ttl"),
            ("collapse id", {"body": "x", "collapse_id": "c" * 65},
             "collapse_id: must be at most 64 bytes", "collapse_id"),
            ("data not an object", {"data": ["x"]}, "data: must be an object of strings",
             "data"),
            ("data value not a string", {"data": {"n": 1}}, "data.n: must be a string",
             "data.n"),
            ("reserved data key", {"data": {"from": "x"}}, "data.from: is a reserved key",
             "data.from"),
            ("reserved data prefix", {"data": {"google.c.a": "x"}},
             "data.google.c.a: is a reserved key", "data.google.c.a"),
            ("content_available", {"body": "x", "content_available": "yes"},
             "content_available: must be a boolean", "content_available"),
            ("interruption level", {"body": "x", "interruption_level": "loud"},
             "interruption_level: must be one of: passive, active, time-sensitive, critical",
             "interruption_level"),
            ("apns unknown key", {"body": "x", "apns": {"header": {}}},
             "apns: unknown field 'header' (headers, payload)", "apns"),
            ("apns header name", {"body": "x", "apns": {"headers": {"x-foo": "1"}}},
             "apns.headers: must map apns-* header names to strings", "apns.headers"),
            ("apns payload", {"body": "x", "apns": {"payload": []}},
             "apns.payload: must be an object", "apns.payload"),
            ("fcm", {"body": "x", "fcm": []}, "fcm: must be an object", "fcm"),
        ]
        for what, notification, message, field in bad_notifications:
            # A notification with nothing to show lacks its body: missing_field.
            code = "missing_field" if what == "nothing to show" else "invalid_field"
            cases.append((what, {"recipients": ok_recipients, "notification": notification},
                          code, on + message, on + field))
        # Overrides that would change what the relay must control.
        cases += [
            ("apns payload without aps", {"recipients": {"device_ids": [a["device_id"]]},
                                          "notification": {"body": "x", "apns": {
                                              "payload": {"aps": None}}}},
             "invalid_field", "notification: an override makes the payload invalid for APNs",
             "notification"),
            ("fcm recipient override", {"recipients": {"device_ids": [f["device_id"]]},
                                        "notification": {"body": "x", "fcm": {
                                            "token": "someone-else"}}},
             "invalid_field", "notification: an override makes the payload invalid for FCM",
             "notification"),
        ]
        before = self.push_counts()
        for what, body, code, message, field in cases:
            with self.subTest(what):
                r = self.daemon.request("POST", "/v1/push", body=body)
                self.assertErrorBody(r, 400, code, message, field)
        with self.subTest("not JSON"):
            self.assertErrorBody(self.daemon.request("POST", "/v1/push", raw_body=b"{nope"),
                                 400, "invalid_json")
        self.assertEqual(self.push_counts(), before)
        self.assertEqual(self.daemon.find_log(
            lambda x: x.get("msg") in ("push accepted", "dry run: would send"),
            since=self.log_start), [])

    def test_unknown_push_id_is_404(self):
        for push_id in ("0123456789abcdef0123456789abcdef", "nope"):
            with self.subTest(push_id):
                self.assertErrorBody(self.daemon.request("GET", "/v1/push/" + push_id), 404,
                                     "not_found", "no such push (or it has expired)")


if __name__ == "__main__":
    harness.main()
