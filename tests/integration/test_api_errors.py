"""Every error path of docs/api.md: exact status, headers and JSON body, and that a
rejected request leaves the database exactly as it was."""

import json
import sqlite3

import harness
from harness import DaemonTestCase, apns_device, quote

TOKEN = "3f1c9a0b5e7d2c4f6a8b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f7"
_DEFAULT = object()


def valid_device(**changes):
    body = {"client_id": "alice", "platform": "apns", "app_id": "com.example.chat",
            "token": TOKEN}
    for k, v in changes.items():
        if v is _DEFAULT:
            body.pop(k, None)
        else:
            body[k] = v
    return body


def without(field):
    return valid_device(**{field: _DEFAULT})


class ErrorTestCase(DaemonTestCase):
    """One daemon for the class, seeded with a device and a membership."""

    config = None

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(config=cls.config)
        cls.addClassCleanup(cls.d.cleanup)
        cls.d.start()
        status, _, _, raw = cls.d.request("PUT", "/v1/devices/existing",
                                          apns_device("alice", locale="en-GB"))
        assert status == 201, raw
        status, _, _, raw = cls.d.request("PUT", "/v1/rooms/room-1/members/alice")
        assert status == 201, raw

    def assertRejected(self, method, path, status, code, message=_DEFAULT, field=_DEFAULT,
                       **request):
        """The request gets exactly this error and changes nothing in the database."""
        before = self.d.snapshot()
        result = self.d.request(method, path, **request)
        kw = {}
        if message is not _DEFAULT:
            kw["message"] = message
        if field is not _DEFAULT:
            kw["field"] = field
        self.assertErrorBody(result, status, code, **kw)
        self.assertEqual(self.d.snapshot(), before, "the database changed")
        return result


class BodyErrorTest(ErrorTestCase):

    def test_malformed_and_non_object_json_is_invalid_json(self):
        for raw in (b'{"client_id":', b"not json", b" ", b"[]", b'["a"]', b'"str"',
                    b"42", b"null", b"true", b'{"client_id":"a"} {}', b"{'a': 1}",
                    b'{"client_id":"alice",}'):
            for method, path in (("PUT", "/v1/devices/new-1"),
                                 ("PUT", "/v1/rooms/room-1/members/alice/prefs")):
                with self.subTest(body=raw, path=path):
                    self.assertRejected(method, path, 400, "invalid_json", field=None,
                                        raw_body=raw)

    def test_member_put_with_non_object_body_is_invalid_json(self):
        for raw in (b"[]", b"nope", b"null", b'"x"'):
            with self.subTest(body=raw):
                self.assertRejected("PUT", "/v1/rooms/room-1/members/bob", 400,
                                    "invalid_json", field=None, raw_body=raw)

    def test_missing_required_field(self):
        for field in ("client_id", "platform", "token", "app_id"):
            with self.subTest(field=field):
                self.assertRejected("PUT", "/v1/devices/new-1", 400, "missing_field",
                                    "%s: is required" % field, field, body=without(field))

    def test_existing_device_is_not_changed_by_a_rejected_replace(self):
        self.assertRejected("PUT", "/v1/devices/existing", 400, "missing_field",
                            "token: is required", "token", body=without("token"))
        self.assertRejected("PUT", "/v1/devices/existing", 400, "invalid_field",
                            "platform: must be one of: apns, fcm", "platform",
                            body=valid_device(platform="gcm"))

    def test_wrong_json_types(self):
        cases = [
            ("client_id", 5, "client_id: must be a string"),
            ("client_id", ["alice"], "client_id: must be a string"),
            ("platform", True, "platform: must be a string"),
            ("token", [], "token: must be a string"),
            ("token", 1234, "token: must be a string"),
            ("app_id", {}, "app_id: must be a string"),
            ("environment", 1, "environment: must be a string"),
            ("locale", 5, "locale: must be a string"),
            ("metadata", "x", "metadata: must be an object"),
            ("metadata", [1], "metadata: must be an object"),
            ("metadata", 1.5, "metadata: must be an object"),
            ("metadata", True, "metadata: must be an object"),
        ]
        for field, value, message in cases:
            with self.subTest(field=field, value=value):
                self.assertRejected("PUT", "/v1/devices/new-1", 400, "invalid_field", message,
                                    field, body=valid_device(**{field: value}))

    def test_bad_values(self):
        cases = [
            ({"platform": "android"}, "platform", "platform: must be one of: apns, fcm"),
            ({"platform": ""}, "platform", "platform: must be one of: apns, fcm"),
            ({"environment": "staging"}, "environment",
             "environment: must be one of: production, sandbox"),
            ({"platform": "fcm", "token": "abc", "environment": "sandbox"}, "environment",
             "environment: sandbox applies only to platform apns"),
            ({"client_id": ""}, "client_id", "client_id: must not be empty"),
            ({"client_id": "c" * 129}, "client_id", "client_id: must be at most 128 bytes"),
            ({"client_id": "é" * 64 + "x"}, "client_id",
             "client_id: must be at most 128 bytes"),
            ({"client_id": "a\u0001b"}, "client_id",
             "client_id: must not contain control characters"),
            ({"client_id": "a\nb"}, "client_id",
             "client_id: must not contain control characters"),
            ({"client_id": "a\u007f"}, "client_id",
             "client_id: must not contain control characters"),
            ({"token": "zz" * 32}, "token", "token: must be hexadecimal for platform apns"),
            ({"token": "0x" + "ab" * 31}, "token",
             "token: must be hexadecimal for platform apns"),
            ({"token": TOKEN[:-2] + " a"}, "token",
             "token: must be hexadecimal for platform apns"),
            ({"token": "a" * 63}, "token",
             "token: must be an even number of hexadecimal digits, 32 to 512"),
            ({"token": "a" * 30}, "token",
             "token: must be an even number of hexadecimal digits, 32 to 512"),
            ({"token": "a" * 514}, "token",
             "token: must be an even number of hexadecimal digits, 32 to 512"),
            ({"platform": "fcm", "token": ""}, "token", "token: must not be empty"),
            ({"platform": "fcm", "token": "t" * 4097}, "token",
             "token: must be at most 4096 bytes"),
            ({"platform": "fcm", "token": "abc def"}, "token",
             "token: must not contain whitespace or control characters"),
            ({"platform": "fcm", "token": "abc\n"}, "token",
             "token: must not contain whitespace or control characters"),
            ({"platform": "fcm", "token": "abc\u0001"}, "token",
             "token: must not contain whitespace or control characters"),
            ({"app_id": ""}, "app_id", "app_id: must not be empty"),
            ({"app_id": "a" * 256}, "app_id", "app_id: must be at most 255 bytes"),
            ({"app_id": "com example"}, "app_id",
             "app_id: must be printable ASCII without spaces"),
            ({"app_id": "com.exämple"}, "app_id",
             "app_id: must be printable ASCII without spaces"),
            ({"app_id": "com.example\u0001"}, "app_id",
             "app_id: must be printable ASCII without spaces"),
            ({"locale": "en US"}, "locale", "locale: must be a language tag such as en-US"),
            ({"locale": "!!"}, "locale", "locale: must be a language tag such as en-US"),
            ({"locale": "en-"}, "locale", "locale: must be a language tag such as en-US"),
            ({"metadata": {"k": "m" * 4089}}, "metadata",
             "metadata: must be at most 4096 bytes as JSON"),
            ({"colour": "red"}, "colour", "colour: unknown field"),
            ({"Client_id": "alice"}, "Client_id", "Client_id: unknown field"),
            ({"last_error_at": None}, "last_error_at", "last_error_at: unknown field"),
        ]
        for changes, field, message in cases:
            with self.subTest(changes=changes):
                self.assertRejected("PUT", "/v1/devices/new-1", 400, "invalid_field", message,
                                    field, body=valid_device(**changes))

    def test_bad_utf8_in_body_id(self):
        for raw in (b'{"client_id":"\xff","platform":"apns","app_id":"a","token":"%s"}',
                    b'{"client_id":"a\xc3","platform":"apns","app_id":"a","token":"%s"}',
                    b'{"client_id":"\xed\xa0\x80","platform":"apns","app_id":"a",'
                    b'"token":"%s"}'):
            with self.subTest(body=raw):
                before = self.d.snapshot()
                result = self.d.request("PUT", "/v1/devices/new-1",
                                        raw_body=raw % TOKEN.encode())
                # A body that is not UTF-8 is not JSON (RFC 8259 section 8.1); a daemon
                # that decodes it anyway must name the field.
                if result[2] and result[2].get("error", {}).get("code") == "invalid_json":
                    self.assertErrorBody(result, 400, "invalid_json", field=None)
                else:
                    self.assertErrorBody(result, 400, "invalid_field",
                                         "client_id: must be valid UTF-8", "client_id")
                self.assertEqual(self.d.snapshot(), before)

    def test_body_device_id_different_from_url_is_409(self):
        self.assertRejected("PUT", "/v1/devices/new-1", 409, "conflict", field="device_id",
                            body=valid_device(device_id="new-2"))
        self.assertRejected("PUT", "/v1/devices/existing", 409, "conflict", field="device_id",
                            body=valid_device(device_id="Existing"))

    def test_prefs_errors(self):
        bad_time = ("muted_until: must be an RFC 3339 time such as 2026-01-02T15:04:05Z, "
                    "or null")
        cases = [
            ({"muted_until": "tomorrow"}, "muted_until", bad_time),
            ({"muted_until": ""}, "muted_until", bad_time),
            ({"muted_until": "2026-12-01"}, "muted_until", bad_time),
            ({"muted_until": "2026-12-01T08:00:00"}, "muted_until", bad_time),
            ({"muted_until": "2026-13-01T08:00:00Z"}, "muted_until", bad_time),
            ({"muted_until": "2026-02-30T08:00:00Z"}, "muted_until", bad_time),
            ({"muted_until": "2026-12-01T25:00:00Z"}, "muted_until", bad_time),
            ({"muted_until": "2026-12-01T08:00:00Zjunk"}, "muted_until", bad_time),
            ({"mentions_only": "yes"}, "mentions_only", "mentions_only: must be a boolean"),
            ({"mentions_only": 1}, "mentions_only", "mentions_only: must be a boolean"),
            ({"muted": True}, "muted", "muted: unknown field"),
        ]
        for body, field, message in cases:
            with self.subTest(body=body):
                self.assertRejected("PUT", "/v1/rooms/room-1/members/alice/prefs", 400,
                                    "invalid_field", message, field, body=body)

    def test_prefs_muted_until_outside_1970_to_9999_is_refused(self):
        # 9999-12-31T23:59:59-01:00 is in the year 10000, which came back as 0000.
        message = ("muted_until: must be between 1970-01-01T00:00:00.001Z and "
                   "9999-12-31T23:59:59.999Z, or null")
        for text in ("9999-12-31T23:59:59-01:00", "9999-12-31T23:59:60Z",
                     "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0000-01-01T00:00:00Z"):
            with self.subTest(muted_until=text):
                result = self.assertRejected("PUT", "/v1/rooms/room-1/members/alice/prefs",
                                             400, "invalid_field", message, "muted_until",
                                             body={"muted_until": text})
                self.assertEqual(result[2], {"error": {"code": "invalid_field",
                                                       "message": message,
                                                       "field": "muted_until"}})

    def test_membership_ids_in_body_different_from_url_are_409(self):
        prefs = "/v1/rooms/room-1/members/alice/prefs"
        member = "/v1/rooms/room-1/members/bob"
        for path, body, field in ((prefs, {"room_id": "room-2", "mentions_only": True},
                                   "room_id"),
                                  (prefs, {"client_id": "bob", "mentions_only": True},
                                   "client_id"),
                                  (member, {"room_id": "room-2"}, "room_id"),
                                  (member, {"client_id": "carol"}, "client_id")):
            with self.subTest(path=path, body=body):
                self.assertRejected("PUT", path, 409, "conflict", field=field, body=body)

    def test_member_put_with_unknown_field(self):
        self.assertRejected("PUT", "/v1/rooms/room-1/members/bob", 400, "invalid_field",
                            "colour: unknown field", "colour", body={"colour": "red"})


class PathIdErrorTest(ErrorTestCase):

    BAD_IDS = [
        ("a" * 129, "must be at most 128 bytes"),
        ("%C3%A9" * 64 + "x", "must be at most 128 bytes"),
        ("%01", "must not contain control characters"),
        ("a%00b", "must not contain control characters"),
        ("a%0Ab", "must not contain control characters"),
        ("a%7F", "must not contain control characters"),
        ("%FF", "must be valid UTF-8"),
        ("a%C3", "must be valid UTF-8"),
        ("%C0%AF", "must be valid UTF-8"),
        ("%ED%A0%80", "must be valid UTF-8"),
    ]

    def endpoints(self, bad):
        """(method, path, field, request kwargs) with the bad id in each id position."""
        prefs = {"body": {"mentions_only": True}}
        return [
            ("PUT", "/v1/devices/%s" % bad, "device_id", {"body": valid_device()}),
            ("GET", "/v1/devices/%s" % bad, "device_id", {}),
            ("DELETE", "/v1/devices/%s" % bad, "device_id", {}),
            ("GET", "/v1/clients/%s/devices" % bad, "client_id", {}),
            ("DELETE", "/v1/clients/%s/devices" % bad, "client_id", {}),
            ("PUT", "/v1/rooms/%s/members/alice" % bad, "room_id", {}),
            ("PUT", "/v1/rooms/room-1/members/%s" % bad, "client_id", {}),
            ("DELETE", "/v1/rooms/%s/members/alice" % bad, "room_id", {}),
            ("DELETE", "/v1/rooms/room-1/members/%s" % bad, "client_id", {}),
            ("GET", "/v1/rooms/%s/members" % bad, "room_id", {}),
            ("PUT", "/v1/rooms/%s/members/alice/prefs" % bad, "room_id", prefs),
            ("PUT", "/v1/rooms/room-1/members/%s/prefs" % bad, "client_id", prefs),
        ]

    def test_bad_ids_in_the_path(self):
        for bad, problem in self.BAD_IDS:
            for method, path, field, kw in self.endpoints(bad):
                with self.subTest(method=method, path=path):
                    self.assertRejected(method, path, 400, "invalid_field",
                                        "%s: %s" % (field, problem), field, **kw)

    def test_empty_ids_in_the_path(self):
        for method, path, field, kw in self.endpoints(""):
            if path == "/v1/rooms/room-1/members/" and method != "PUT":
                continue
            with self.subTest(method=method, path=path):
                self.assertRejected(method, path, 400, "invalid_field",
                                    "%s: must not be empty" % field, field, **kw)

    def test_a_nul_byte_does_not_cut_the_id_short(self):
        # a%00b must not be taken as the device "a".
        status, _, _, raw = self.d.request("PUT", "/v1/devices/a", valid_device(token="ab" * 16))
        self.assertEqual(status, 201, raw)
        self.assertRejected("DELETE", "/v1/devices/a%00b", 400, "invalid_field",
                            "device_id: must not contain control characters", "device_id")
        self.assertEqual(self.d.request("GET", "/v1/devices/a")[0], 200)


class MediaTypeTest(ErrorTestCase):

    def test_body_without_json_content_type_is_415(self):
        body = json.dumps(valid_device()).encode()
        for ctype in (None, "text/plain", "application/x-www-form-urlencoded",
                      "application/jsonx", "json", "text/json", "application/json-patch+json"):
            for path in ("/v1/devices/new-1", "/v1/rooms/room-1/members/alice/prefs",
                         "/v1/rooms/room-1/members/bob"):
                raw = body if "devices" in path else b"{}"
                with self.subTest(content_type=ctype, path=path):
                    self.assertRejected("PUT", path, 415, "unsupported_media_type", field=None,
                                        raw_body=raw, headers={"Content-Type": ctype})


class AuthErrorTest(ErrorTestCase):

    def requests(self):
        return [
            ("PUT", "/v1/devices/new-1", {"body": valid_device()}),
            ("GET", "/v1/devices/existing", {}),
            ("DELETE", "/v1/devices/existing", {}),
            ("GET", "/v1/clients/alice/devices", {}),
            ("DELETE", "/v1/clients/alice/devices", {}),
            ("PUT", "/v1/rooms/room-1/members/bob", {}),
            ("DELETE", "/v1/rooms/room-1/members/alice", {}),
            ("GET", "/v1/rooms/room-1/members", {}),
            ("PUT", "/v1/rooms/room-1/members/alice/prefs", {"body": {"mentions_only": True}}),
            # Authentication comes before the body is looked at.
            ("PUT", "/v1/devices/new-2", {"body": {"nonsense": 1}}),
            ("PUT", "/v1/devices/new-3", {"raw_body": b"{", "headers": {"Content-Type": None}}),
        ]

    def test_missing_or_wrong_authorization_is_401(self):
        key = self.d.key
        variants = [
            ("no header", {"key": None}),
            ("wrong key", {"key": "wrong-" + key}),
            ("key with a suffix", {"key": key + "x"}),
            ("key prefix", {"key": key[:-1]}),
            ("empty bearer", {"key": None, "headers": {"Authorization": "Bearer "}}),
            ("bearer only", {"key": None, "headers": {"Authorization": "Bearer"}}),
            ("no scheme", {"key": None, "headers": {"Authorization": key}}),
            ("basic", {"key": None, "headers": {"Authorization": "Basic " + key}}),
            ("token scheme", {"key": None, "headers": {"Authorization": "Token " + key}}),
            ("comment line", {"key": "# generated"}),
        ]
        for name, auth in variants:
            for method, path, kw in self.requests():
                merged = dict(kw)
                merged.update(auth)
                if "headers" in kw and "headers" in auth:
                    merged["headers"] = dict(kw["headers"], **auth["headers"])
                with self.subTest(auth=name, method=method, path=path):
                    result = self.assertRejected(method, path, 401, "unauthorized",
                                                 field=None, **merged)
                    self.assertUnauthorized(result)
        self.assertFalse(self.d.secret_in_log(key))

    def test_health_endpoints_need_no_key(self):
        for path in ("/healthz", "/readyz"):
            with self.subTest(path=path):
                self.assertEqual(self.d.request("GET", path, key=None)[0], 200)
                self.assertEqual(self.d.request("GET", path, key="wrong")[0], 200)


class RoutingErrorTest(ErrorTestCase):

    def test_unknown_paths_are_404(self):
        for path in ("/", "/v1", "/v1/", "/v2/devices/existing", "/v1/devices",
                     "/v1/devices/existing/x", "/v1/clients/alice", "/v1/clients",
                     "/v1/clients/alice/devices/x", "/v1/rooms/room-1", "/v1/rooms",
                     "/v1/rooms/room-1/members/alice/prefs/x",
                     "/v1/rooms/room-1/members/alice/other", "/V1/devices/existing",
                     "/healthz/x", "/v1/healthz"):
            for method in ("GET", "PUT", "DELETE"):
                with self.subTest(method=method, path=path):
                    self.assertRejected(method, path, 404, "not_found", field=None)

    def test_unknown_path_without_key_is_401_wherever_it_is(self):
        # Without a key nothing is learned, not even that a path does not exist.
        for path in ("/nope", "/", "/v2/devices/existing", "/Healthz", "/healthz/",
                     "/healthz%2F"):
            with self.subTest(path=path):
                result = self.assertRejected("GET", path, 401, "unauthorized", field=None,
                                             key=None)
                self.assertUnauthorized(result)

    def test_wrong_method_is_405_with_allow(self):
        cases = [
            ("POST", "/v1/devices/existing", {"GET", "PUT", "DELETE"}),
            ("PATCH", "/v1/devices/existing", {"GET", "PUT", "DELETE"}),
            ("PUT", "/v1/clients/alice/devices", {"GET", "DELETE"}),
            ("POST", "/v1/clients/alice/devices", {"GET", "DELETE"}),
            ("GET", "/v1/rooms/room-1/members/alice", {"PUT", "DELETE"}),
            ("POST", "/v1/rooms/room-1/members/alice", {"PUT", "DELETE"}),
            ("GET", "/v1/rooms/room-1/members/alice/prefs", {"PUT"}),
            ("DELETE", "/v1/rooms/room-1/members/alice/prefs", {"PUT"}),
            ("POST", "/v1/rooms/room-1/members", {"GET"}),
            ("DELETE", "/v1/rooms/room-1/members", {"GET"}),
            ("PUT", "/v1/rooms/room-1/members", {"GET"}),
            ("POST", "/healthz", {"GET"}),
            ("PUT", "/readyz", {"GET"}),
        ]
        for method, path, allowed in cases:
            kw = {"body": {}} if method in ("POST", "PUT", "PATCH") else {}
            with self.subTest(method=method, path=path):
                result = self.assertRejected(method, path, 405, "method_not_allowed",
                                             field=None, **kw)
                allow = result[1].get("allow")
                self.assertIsNotNone(allow, "no Allow header")
                self.assertEqual({m.strip() for m in allow.split(",")}, allowed)


class QueryErrorTest(ErrorTestCase):

    def test_bad_limit_is_400(self):
        for limit in ("0", "1001", "-1", "abc", "", "1.5", "10x", " 5", "0x10", "+5",
                      "99999999999999999999999"):
            with self.subTest(limit=limit):
                result = self.assertRejected("GET", "/v1/rooms/room-1/members?limit=" +
                                             quote(limit), 400, "invalid_field",
                                             field="limit")
                self.assertTrue(result[2]["error"]["message"].startswith("limit: "),
                                result[2])

    def test_bad_after_is_400(self):
        for after, problem in (("%FF", "must be valid UTF-8"),
                               ("a%01", "must not contain control characters"),
                               ("a" * 129, "must be at most 128 bytes")):
            with self.subTest(after=after):
                self.assertRejected("GET", "/v1/rooms/room-1/members?after=" + after, 400,
                                    "invalid_field", "after: " + problem, "after")


class BodySizeTest(ErrorTestCase):

    config = {"api": {"max_body_size": "1K"}}

    def padded_device(self, size):
        """A valid device body of exactly size bytes."""
        body = valid_device(token="ab" * 16, metadata={"pad": ""})
        base = len(json.dumps(body).encode())
        body["metadata"]["pad"] = "p" * (size - base)
        raw = json.dumps(body).encode()
        self.assertEqual(len(raw), size)
        return raw

    def test_body_over_max_body_size_is_413(self):
        for size in (1025, 4000, 200000):
            with self.subTest(size=size):
                self.assertRejected("PUT", "/v1/devices/big", 413, "payload_too_large",
                                    field=None, raw_body=self.padded_device(size))
        big = json.dumps({"mentions_only": True, "x": "y" * 2000}).encode()
        self.assertRejected("PUT", "/v1/rooms/room-1/members/alice/prefs", 413,
                            "payload_too_large", field=None, raw_body=big)
        self.assertRejected("PUT", "/v1/rooms/room-1/members/bob", 413,
                            "payload_too_large", field=None, raw_body=big)
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)

    def test_body_of_exactly_max_body_size_is_accepted(self):
        status, _, body, raw = self.d.request("PUT", "/v1/devices/exact",
                                              raw_body=self.padded_device(1024))
        self.assertEqual(status, 201, raw)
        self.assertEqual(len(body["metadata"]["pad"]), len(json.loads(
            self.padded_device(1024))["metadata"]["pad"]))


class StoreUnavailableTest(ErrorTestCase):

    config = {"store": {"busy_timeout": "200ms"}}

    def test_locked_database_is_503_and_nothing_is_written(self):
        before = self.d.snapshot()
        conn = sqlite3.connect(self.d.db_path, timeout=10, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = self.d.request("PUT", "/v1/devices/locked", valid_device(token="cd" * 16))
            self.assertErrorBody(result, 503, "unavailable", field=None)
            result = self.d.request("PUT", "/v1/rooms/room-9/members/alice")
            self.assertErrorBody(result, 503, "unavailable", field=None)
            result = self.d.request("DELETE", "/v1/devices/existing")
            self.assertErrorBody(result, 503, "unavailable", field=None)
            self.assertEqual(self.d.request("GET", "/healthz")[0], 200)
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        self.assertEqual(self.d.snapshot(), before)
        # Once the lock is gone the same write goes through.
        status, _, _, raw = self.d.request("PUT", "/v1/devices/locked",
                                           valid_device(token="cd" * 16))
        self.assertEqual(status, 201, raw)


if __name__ == "__main__":
    harness.main()
