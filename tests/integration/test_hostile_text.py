"""Text from outside that is not UTF-8, or that the daemon must cut, still comes back
as a JSON error of valid UTF-8, goes to the log as valid UTF-8, and leaves the daemon
running: once ready, only a signal ends it."""

import os

import harness
from fixtures import ABLY_KEY, ABLY_SECRET, sign, write_ably_keys
from harness import DaemonTestCase, apns_device

UNKNOWN_KEY = "X-Ably-Key names an unknown key: "


class HostileTextCase(DaemonTestCase):
    """One daemon for the class, with Ably webhooks on and one Ably key."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon(config={"ably": {"enabled": "yes",
                                                "keys_file": "{tmp}/ably-keys"}})
        cls.addClassCleanup(cls.d.cleanup)
        write_ably_keys(os.path.join(cls.d.tmp, "ably-keys"))
        cls.d.start()

    def tearDown(self):
        # Whatever the request was, the daemon is still there and every log line is
        # UTF-8 (strict decoding raises otherwise).
        self.assertTrue(self.d.running(), "the daemon exited")
        self.assertEqual(self.d.request("GET", "/healthz")[0], 200)
        self.d.log_bytes().decode("utf-8")

    def ably(self, raw, headers, key=None):
        hdrs = {"Content-Type": "application/json", "X-Ably-Signature": sign(raw)}
        hdrs.update(headers)
        return self.d.request("POST", "/v1/ingest/ably", raw_body=raw, headers=hdrs,
                              key=key)

    def assertUtf8Error(self, result, status, code, message, field=harness._DEFAULT):
        """The raw body is UTF-8 JSON (request() parses it only then), as expected."""
        raw = result[3]
        raw.decode("utf-8")
        self.assertErrorBody(result, status, code, message, field)


class TestUnknownFieldNames(HostileTextCase):

    def test_unknown_field_cut_inside_a_two_byte_character_is_cut_before_it(self):
        # 62 ASCII bytes, then "é" (2 bytes) many times: both the 63-byte field and the
        # name in the message end where a character would be split.
        name = "a" * 62 + "\u00e9" * 150
        body = apns_device("alice")
        body[name] = 1
        self.assertUtf8Error(self.d.request("PUT", "/v1/devices/dev-long", body), 400,
                             "invalid_field", "a" * 62 + "\u00e9" * 89 + ": unknown field",
                             "a" * 62)

    def test_unknown_field_cut_inside_a_three_byte_character_is_cut_before_it(self):
        # 240 bytes of the message are for the name: "€" (3 bytes) spans 239..241.
        name = "b" * 239 + "\u20ac" * 20
        body = apns_device("alice")
        body[name] = 1
        self.assertUtf8Error(self.d.request("PUT", "/v1/devices/dev-long", body), 400,
                             "invalid_field", "b" * 239 + ": unknown field", "b" * 63)

    def test_unknown_recipients_field_names_the_path(self):
        name = "c" * 300 + "\u00e9"
        body = {"recipients": {"client_ids": ["alice"], name: True},
                "notification": {"title": "t", "body": "b"}}
        st, _, parsed, raw = self.d.request("POST", "/v1/push", body)
        raw.decode("utf-8")
        self.assertEqual(st, 400, raw)
        self.assertEqual(parsed["error"]["code"], "invalid_field")
        self.assertEqual(parsed["error"]["field"], "recipients." + "c" * 63)
        self.assertTrue(parsed["error"]["message"].startswith("recipients.ccc"))
        self.assertTrue(parsed["error"]["message"].endswith(": unknown field"))


class TestMalformedAblyKey(HostileTextCase):

    BODY = b'{"items":[]}'

    def test_key_that_is_not_utf8_is_refused_with_the_bytes_replaced(self):
        self.assertUtf8Error(self.ably(self.BODY, {"X-Ably-Key": b"app.\xff\xfekey\xc3"}),
                             401, "unauthorized",
                             UNKNOWN_KEY + "app.\ufffd\ufffdkey\ufffd", None)

    def test_huge_key_is_shown_cut_on_a_character(self):
        key = "k" * 63 + "\u00e9" + "k" * 8000
        self.assertUtf8Error(self.ably(self.BODY, {"X-Ably-Key": key.encode("utf-8")}),
                             401, "unauthorized", UNKNOWN_KEY + "k" * 63, None)

    def test_empty_key_is_missing(self):
        self.assertUtf8Error(self.ably(self.BODY, {"X-Ably-Key": ""}), 401,
                             "unauthorized", "no X-Ably-Key header", None)

    def test_key_without_colon_or_with_its_secret_is_unknown(self):
        for key in ("app.key1secret1", "app.key1:" + ABLY_SECRET, ":", "app."):
            with self.subTest(key=key):
                self.assertUtf8Error(self.ably(self.BODY, {"X-Ably-Key": key}), 401,
                                     "unauthorized", UNKNOWN_KEY + key, None)

    def test_signed_webhook_with_a_header_that_is_not_utf8_is_refused(self):
        headers = {"X-Ably-Key": ABLY_KEY, "X-Ably-Envelope-Source": "channel.message",
                   "X-Ably-Envelope-Channel": b"room-\xff\xc3",
                   "X-Ably-Message-Client-Id": "alice", "X-Ably-Message-Id": "m1"}
        self.assertUtf8Error(self.ably(b"hello", headers), 400, "invalid_field",
                             "x-ably-envelope-channel: must be UTF-8",
                             "x-ably-envelope-channel")

    def test_body_that_is_not_json_quotes_it_as_utf8(self):
        for raw in ("\u20ac".encode("utf-8"), b"\xe2\x82", b"\xff" * 300,
                    b'{"items":[' + "\u00e9".encode("utf-8") * 200):
            with self.subTest(raw=raw[:8]):
                st, _, parsed, body = self.ably(raw, {"X-Ably-Key": ABLY_KEY})
                body.decode("utf-8")
                self.assertEqual(st, 400, body)
                self.assertEqual(parsed["error"]["code"], "invalid_json")
                self.assertTrue(parsed["error"]["message"].startswith(
                    "the body is not JSON"), body)


if __name__ == "__main__":
    harness.main()
