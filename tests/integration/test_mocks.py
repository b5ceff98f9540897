"""Tests of the mock APNs and FCM servers themselves (tests/mocks).

They are driven by real HTTP/2 clients: curl (libcurl + nghttp2, verifying the generated CA)
for single requests, h2load for concurrency, and a few raw frames over Python's ssl module
where a client must break the rules on purpose (more streams than the server allows).
"""

import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import mockctl  # noqa: E402

TEAM = "TEAM123456"
KEY_ID = "KEY1234567"
TOPIC = "com.example.chat"
OTHER_TOPIC = "com.example.other"
PROJECT = "example-chat"
EMAIL = "pushrelay@example-chat.iam.gserviceaccount.com"
TOKEN = "0123456789abcdef" * 4
BODY = b'{"aps":{"alert":{"title":"Alice","body":"hello"},"sound":"default"},"room":"r1"}'

CERTS = None
_TMP = None

needs_curl = unittest.skipUnless(shutil.which("curl"), "curl is not installed")
needs_h2load = unittest.skipUnless(shutil.which("h2load"),
                                   "h2load is not installed (Debian: nghttp2-client)")


def setUpModule():
    global CERTS, _TMP
    _TMP = tempfile.mkdtemp(prefix="pushrelay-mocks-")
    CERTS = mockctl.Certs.generate(_TMP)


def tearDownModule():
    if _TMP is not None and not os.environ.get("PUSHRELAY_KEEP_TMP"):
        shutil.rmtree(_TMP, ignore_errors=True)


# ---- clients ---------------------------------------------------------------------

class Response:
    def __init__(self, exit_code, status, headers, body, stderr):
        self.exit_code = exit_code
        self.status = status
        self.headers = headers
        self.body = body
        self.stderr = stderr

    def json(self):
        return json.loads(self.body)


def curl(url, method="POST", headers=(), body=None, extra=(), timeout=10):
    """One request with curl over h2, trusting the test CA. headers: (name, value) pairs;
    a value of None removes a header curl would add."""
    cmd = ["curl", "-sS", "--http2", "--cacert", CERTS.ca, "-X", method, "-i",
           "--max-time", str(timeout), "-H", "accept:", "-H", "user-agent:"]
    for name, value in headers:
        cmd += ["-H", "%s:" % name if value is None else "%s: %s" % (name, value)]
    if body is not None:
        cmd += ["--data-binary", "@-"]
    cmd += list(extra) + [url]
    p = subprocess.run(cmd, input=body if body is not None else b"", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout + 5)
    status, resp_headers, resp_body = None, {}, b""
    if b"\r\n\r\n" in p.stdout:
        head, resp_body = p.stdout.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            resp_headers[name.strip().lower()] = value.strip()
    return Response(p.returncode, status, resp_headers, resp_body, p.stderr.decode())


def h2load(url, n, clients=1, streams=1, headers=(), body=None):
    """Run h2load; returns (succeeded, failed, {status class: count})."""
    cmd = ["h2load", "-n", str(n), "-c", str(clients), "-m", str(streams)]
    for name, value in headers:
        cmd += ["-H", "%s: %s" % (name, value)]
    body_file = None
    if body is not None:
        body_file = os.path.join(_TMP, "h2load-body")
        with open(body_file, "wb") as f:
            f.write(body)
        cmd += ["-d", body_file]
    out = subprocess.run(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=60).stdout.decode()
    m = re.search(r"(\d+) succeeded, (\d+) failed", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m is None or codes is None:
        raise AssertionError("h2load output not understood:\n" + out)
    return int(m.group(1)), int(m.group(2)), dict(zip(("2xx", "3xx", "4xx", "5xx"),
                                                      map(int, codes.groups())))


class RawH2:
    """Just enough HTTP/2 to misbehave: frames by hand, HPACK literals without indexing."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0, 1, 3, 4, 7

    def __init__(self, port):
        ctx = ssl.create_default_context(cafile=CERTS.ca)
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.buf = b""
        self.sock.sendall(self.PREFACE + self.frame(self.SETTINGS, 0, 0, b""))

    @staticmethod
    def frame(kind, flags, stream, payload):
        return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
            struct.pack(">I", stream) + payload

    @staticmethod
    def _int(value, prefix_bits):
        limit = (1 << prefix_bits) - 1
        if value < limit:
            return bytes([value])
        out, value = bytearray([limit]), value - limit
        while value >= 128:
            out.append(value % 128 + 128)
            value //= 128
        out.append(value)
        return bytes(out)

    @classmethod
    def hpack(cls, headers):
        out = b""
        for name, value in headers:
            name, value = name.encode(), value.encode()
            out += b"\x00" + cls._int(len(name), 7) + name + cls._int(len(value), 7) + value
        return out

    def send_headers(self, stream, headers, end_stream):
        self.sock.sendall(self.frame(self.HEADERS, 0x4 | (0x1 if end_stream else 0), stream,
                                     self.hpack(headers)))

    def send_data(self, stream, data, end_stream=True):
        self.sock.sendall(self.frame(self.DATA, 0x1 if end_stream else 0, stream, data))

    def read_frame(self):
        """(type, flags, stream, payload), or None at EOF."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        length = int.from_bytes(self.buf[:3], "big")
        kind, flags = self.buf[3], self.buf[4]
        stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload, self.buf = self.buf[9:9 + length], self.buf[9 + length:]
        return kind, flags, stream, payload

    def read_settings(self):
        """Read up to the server's next non-ACK SETTINGS, ACK it, return it as a dict."""
        while True:
            f = self.read_frame()
            if f is None:
                raise AssertionError("connection closed before SETTINGS")
            if f[0] == self.SETTINGS and not f[1] & 1:
                self.sock.sendall(self.frame(self.SETTINGS, 1, 0, b""))
                return {struct.unpack(">H", f[3][i:i + 2])[0]:
                        struct.unpack(">I", f[3][i + 2:i + 6])[0]
                        for i in range(0, len(f[3]), 6)}

    def read_until(self, predicate):
        """Frames up to and including the first that satisfies predicate (or EOF)."""
        frames = []
        while True:
            f = self.read_frame()
            if f is None:
                return frames
            frames.append(f)
            if predicate(f):
                return frames

    def close(self):
        self.sock.close()


MAX_CONCURRENT_STREAMS = 3


def stop_cleanly(mock):
    """Stop a mock; it must exit 0 (under sanitizers, also without leaks)."""
    status = mock.stop()
    if status != 0:
        raise AssertionError("mock_%s exited with %s; log:\n%s"
                             % (mock.kind, status, mock.log_text()))


def goaway_fields(f):
    last, code = struct.unpack(">II", f[3][:8])
    return last & 0x7FFFFFFF, code, f[3][8:]


# ---- APNs --------------------------------------------------------------------------

def apns_jwt(iat=None, kid=KEY_ID, iss=TEAM, **kw):
    return mockctl.es256_jwt(CERTS.apns_key, kid, iss, iat=iat, **kw)


def apns_request_headers(jwt, token=TOKEN):
    return [(":method", "POST"), (":scheme", "https"), (":authority", "localhost"),
            (":path", "/3/device/" + token), ("apns-topic", TOPIC),
            ("authorization", "bearer " + jwt)]


class ApnsCase(unittest.TestCase):
    """One mock_apns for the class; rules and records are reset per test."""

    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.mock = mockctl.Mock("apns", CERTS, "--team-id", TEAM, "--key-id", KEY_ID,
                                "--auth-key", CERTS.apns_pub, "--topic", TOPIC,
                                "--topic", OTHER_TOPIC, *cls.extra_args).start()
        cls.jwt = apns_jwt()

    @classmethod
    def tearDownClass(cls):
        stop_cleanly(cls.mock)

    def setUp(self):
        self.mock.clear_rules()
        self.mock.clear_requests()

    def headers(self, **changes):
        h = {"apns-topic": TOPIC, "apns-push-type": "alert", "apns-priority": "10",
             "authorization": "bearer " + self.jwt, "content-type": None}
        for name, value in changes.items():
            name = name.replace("_", "-")
            if value is None:
                h.pop(name, None)
            else:
                h[name] = value
        return list(h.items())

    def push(self, token=TOKEN, body=BODY, method="POST", path=None, **headers):
        return curl(self.mock.url(path if path is not None else "/3/device/" + token),
                    method=method, headers=self.headers(**headers), body=body)

    def assertReason(self, r, status, reason):
        self.assertEqual((r.status, r.body), (status, b'{"reason":"%s"}' % reason.encode()),
                         r.stderr)
        self.assertEqual(r.headers.get("content-type"), "application/json")


@needs_curl
class TestApns(ApnsCase):

    def test_ready_line_gives_both_ports(self):
        self.assertGreater(self.mock.h2_port, 0)
        self.assertGreater(self.mock.control_port, 0)
        self.assertNotEqual(self.mock.h2_port, self.mock.control_port)
        self.assertEqual(self.mock.stats()["max_concurrent_streams"], 1000)

    def test_valid_push_gets_200_with_apns_id_and_is_recorded_exactly(self):
        apns_id = "123e4567-e89b-12d3-a456-426614174000"
        r = self.push(apns_id=apns_id, apns_expiration="0", apns_collapse_id="room-1")
        self.assertEqual((r.exit_code, r.status, r.body), (0, 200, b""), r.stderr)
        self.assertEqual(r.headers["apns-id"], apns_id)
        self.assertNotIn("content-type", r.headers)
        [rec] = self.mock.requests()
        self.assertEqual(rec["seq"], 1)
        self.assertEqual((rec["method"], rec["path"], rec["status"]),
                         ("POST", "/3/device/" + TOKEN, 200))
        self.assertEqual(rec["headers"], {
            "apns-topic": TOPIC, "apns-push-type": "alert", "apns-priority": "10",
            "authorization": "bearer " + self.jwt, "apns-id": apns_id,
            "apns-expiration": "0", "apns-collapse-id": "room-1",
            "content-length": str(len(BODY))})
        self.assertEqual(rec["body"], BODY.decode())
        self.assertNotIn("reason", rec)

    def test_missing_apns_id_is_generated_as_lowercase_uuid(self):
        r = self.push()
        self.assertEqual(r.status, 200)
        self.assertRegex(r.headers["apns-id"],
                         r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

    # Faults in check order; each group's reason wins over every later group's.
    FAULTS = [
        ("BadMessageId", 400, dict(apns_id="not-a-uuid")),
        ("MethodNotAllowed", 405, dict(method="PUT")),
        ("MissingTopic", 400, dict(apns_topic=None)),
        ("TopicDisallowed", 400, dict(apns_topic="com.evil.app")),
        ("BadCollapseId", 400, dict(apns_collapse_id="c" * 65)),
        ("BadPriority", 400, dict(apns_priority="7")),
        ("InvalidPushType", 400, dict(apns_push_type="sms")),
        ("BadExpirationDate", 400, dict(apns_expiration="soon")),
        ("MissingDeviceToken", 400, dict(path="/3/device/")),
        ("BadDeviceToken", 400, dict(path="/3/device/not-hex")),
        ("BadPath", 404, dict(path="/4/device/" + TOKEN)),
        ("MissingProviderToken", 403, dict(authorization=None)),
        ("InvalidProviderToken", 403, dict(authorization="bearer x.y.z")),
        ("PayloadEmpty", 400, dict(body=b"")),
        ("PayloadTooLarge", 413, dict(body=b'{"aps":{},"x":"' + b"x" * 4090 + b'"}')),
        ("BadPayload", 400, dict(body=b"not json")),
    ]
    # One fault per check, for combining (the others share a check with one of these).
    ORDER = ["BadMessageId", "MethodNotAllowed", "MissingTopic", "BadCollapseId",
             "BadPriority", "InvalidPushType", "BadExpirationDate", "BadDeviceToken",
             "MissingProviderToken", "PayloadEmpty"]

    def test_each_check_answers_its_exact_reason(self):
        for reason, status, fault in self.FAULTS:
            with self.subTest(reason=reason):
                self.assertReason(self.push(**fault), status, reason)

    def test_checks_run_in_pushy_order(self):
        faults = {reason: (status, fault) for reason, status, fault in self.FAULTS}
        for i, reason in enumerate(self.ORDER):
            combined = {}
            for later in self.ORDER[i:]:
                combined.update(faults[later][1])
            with self.subTest(first=reason):
                self.assertReason(self.push(**combined), faults[reason][0], reason)

    def test_payload_of_exactly_4096_bytes_is_accepted(self):
        body = b'{"aps":{},"x":"' + b"x" * (4096 - 17) + b'"}'
        self.assertEqual(len(body), 4096)
        self.assertEqual(self.push(body=body).status, 200)

    def test_voip_payload_may_be_5120_bytes(self):
        body = b'{"aps":{},"x":"' + b"x" * (5120 - 17) + b'"}'
        r = self.push(body=body, apns_push_type="voip", apns_topic=TOPIC + ".voip")
        self.assertEqual(r.status, 200, r.body)

    def test_provider_token_faults(self):
        now = int(time.time())
        cases = [
            ("kid is not --key-id", apns_jwt(kid="OTHERKEY00"), "InvalidProviderToken"),
            ("iss is not --team-id", apns_jwt(iss="OTHERTEAM0"), "InvalidProviderToken"),
            ("DER signature", apns_jwt(der=True), "InvalidProviderToken"),
            ("tampered claims", apns_jwt().split(".")[0] + "." + mockctl.b64url(
                json.dumps({"iss": TEAM, "iat": now + 1})) + "." + apns_jwt().split(".")[2],
             "InvalidProviderToken"),
            ("alg HS256", apns_jwt(header={"alg": "HS256", "kid": KEY_ID}),
             "InvalidProviderToken"),
            ("iat in milliseconds", apns_jwt(iat=now * 1000), "InvalidProviderToken"),
            ("iat a string", apns_jwt(claims={"iss": TEAM, "iat": str(now)}),
             "InvalidProviderToken"),
            ("iat over an hour old", apns_jwt(iat=now - 3601), "ExpiredProviderToken"),
        ]
        for what, jwt, reason in cases:
            with self.subTest(what):
                self.assertReason(self.push(authorization="bearer " + jwt), 403, reason)
        self.assertEqual(self.push(authorization="bearer " + apns_jwt(iat=now - 3500)).status,
                         200)

    def test_token_registered_to_another_topic_is_device_token_not_for_topic(self):
        self.mock.add_rule(token=TOKEN, topic=OTHER_TOPIC)
        self.assertReason(self.push(), 400, "DeviceTokenNotForTopic")
        self.assertEqual(self.push(apns_topic=OTHER_TOPIC).status, 200)

    @needs_h2load
    def test_jwt_is_verified_once_then_served_from_cache(self):
        self.mock.clear_stats()
        jwt = apns_jwt(iat=int(time.time()) - 5)
        ok, failed, codes = h2load(self.mock.url("/3/device/" + TOKEN), 10,
                                   headers=[("apns-topic", TOPIC),
                                            ("authorization", "bearer " + jwt)], body=BODY)
        self.assertEqual((ok, failed, codes["2xx"]), (10, 0, 10))
        stats = self.mock.stats()
        self.assertEqual((stats["jwt_verifications"], stats["jwt_cache_hits"]), (1, 9))
        self.assertEqual(stats["requests"], 10)

    def test_rule_410_answers_unregistered_with_timestamp_once(self):
        other = "ab" * 32
        self.mock.add_rule(token=TOKEN, status=410, reason="Unregistered",
                           timestamp=1700000000123, times=1)
        r = self.push()
        self.assertEqual((r.status, r.body),
                         (410, b'{"reason":"Unregistered","timestamp":1700000000123}'))
        self.assertEqual(self.push(token=other).status, 200)
        self.assertEqual(self.push().status, 200)
        self.assertEqual([(x["status"], x.get("reason")) for x in self.mock.requests()],
                         [(410, "Unregistered"), (200, None), (200, None)])

    def test_rule_410_without_timestamp_uses_now(self):
        self.mock.add_rule(token=TOKEN, status=410)
        before = int(time.time() * 1000)
        r = self.push()
        body = r.json()
        self.assertEqual(body["reason"], "Unregistered")
        self.assertTrue(before - 1000 <= body["timestamp"] <= int(time.time() * 1000) + 1000)

    def test_rule_429_sends_retry_after(self):
        self.mock.add_rule(status=429, reason="TooManyRequests", retry_after=30)
        r = self.push()
        self.assertReason(r, 429, "TooManyRequests")
        self.assertEqual(r.headers["retry-after"], "30")

    def test_rule_delay_holds_one_response_without_blocking_others(self):
        slow = "cd" * 32
        self.mock.add_rule(token=slow, delay_ms=600)
        started = time.monotonic()
        proc = subprocess.Popen(["curl", "-sS", "--http2", "--cacert", CERTS.ca, "-o",
                                 "/dev/null", "-w", "%{http_code}", "-H", "apns-topic: " + TOPIC,
                                 "-H", "authorization: bearer " + self.jwt, "--data-binary",
                                 BODY.decode(), self.mock.url("/3/device/" + slow)],
                                stdout=subprocess.PIPE)
        self.mock.wait_for_requests(1)
        self.assertEqual(self.push().status, 200)
        self.assertIsNone(proc.poll(), "the delayed request finished early")
        out, _ = proc.communicate(timeout=10)
        self.assertEqual(out, b"200")
        self.assertGreaterEqual(time.monotonic() - started, 0.6)

    def test_rule_rst_stream_resets_only_the_stream(self):
        self.mock.add_rule(token=TOKEN, action="rst_stream", times=1)
        r = self.push()
        self.assertEqual(r.exit_code, 92, r.stderr)     # CURLE_HTTP2_STREAM
        self.assertIn("INTERNAL_ERROR", r.stderr)
        self.assertEqual(self.push().status, 200)
        self.assertEqual(self.mock.stats()["rst_streams"], 1)

    def test_rule_reset_drops_the_connection(self):
        self.mock.add_rule(token=TOKEN, action="reset", times=1)
        r = self.push()
        self.assertNotEqual(r.exit_code, 0)
        self.assertIsNone(r.status)
        self.assertEqual(self.mock.stats()["resets"], 1)
        self.assertEqual(self.push().status, 200)

    def test_rule_goaway_answers_then_sends_goaway_with_reason(self):
        self.mock.clear_stats()
        self.mock.add_rule(token=TOKEN, status=503, reason="Shutdown", action="goaway")
        h2 = RawH2(self.mock.h2_port)
        h2.read_settings()
        h2.send_headers(1, apns_request_headers(self.jwt), end_stream=False)
        h2.send_data(1, BODY)
        frames = h2.read_until(lambda f: f[0] == RawH2.GOAWAY)
        h2.close()
        self.assertIn((RawH2.HEADERS, 1), [(f[0], f[2]) for f in frames])
        self.assertEqual(goaway_fields(frames[-1]), (1, 0, b'{"reason":"Shutdown"}'))
        self.assertEqual(self.mock.stats()["responses"], {"503": 1})

    def test_rule_goaway_without_status_leaves_the_stream_unprocessed(self):
        self.mock.add_rule(token=TOKEN, action="goaway")
        r = self.push()
        self.assertNotEqual(r.exit_code, 0)
        self.assertIsNone(r.status)
        self.assertEqual(self.mock.requests()[0]["action"], "goaway")

    def test_control_goaway_and_disconnect_reach_live_connections(self):
        slow = "ef" * 32
        self.mock.add_rule(token=slow, delay_ms=500)
        cmd = ["curl", "-sS", "--http2", "--cacert", CERTS.ca, "-o", "/dev/null", "-w",
               "%{http_code}", "-H", "apns-topic: " + TOPIC, "-H",
               "authorization: bearer " + self.jwt, "--data-binary", BODY.decode(),
               self.mock.url("/3/device/" + slow)]
        # A graceful GOAWAY lets the request in flight finish.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.mock.wait_for_requests(1)
        self.assertEqual(self.mock.goaway(debug='{"reason":"Shutdown"}'), 1)
        out, _ = proc.communicate(timeout=10)
        self.assertEqual((proc.returncode, out), (0, b"200"))
        # A disconnect does not.
        self.mock.clear_requests()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.mock.wait_for_requests(1)
        self.assertEqual(self.mock.disconnect(), 1)
        out, _ = proc.communicate(timeout=10)
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(self.mock.stats()["connections_live"], 0)

    def test_settings_changes_max_concurrent_streams_on_live_connections(self):
        h2 = RawH2(self.mock.h2_port)
        self.assertEqual(h2.read_settings()[MAX_CONCURRENT_STREAMS], 1000)
        deadline = time.monotonic() + 5
        while self.mock.stats()["connections_live"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.mock.settings(7)
        try:
            self.assertEqual(h2.read_settings()[MAX_CONCURRENT_STREAMS], 7)
        finally:
            h2.close()
            self.mock.settings(1000)

    def test_h2_is_the_only_protocol(self):
        r = curl(self.mock.url("/3/device/" + TOKEN), extra=["--http1.1"], body=BODY)
        self.assertEqual(r.exit_code, 35, r.stderr)     # CURLE_SSL_CONNECT_ERROR
        self.assertIn("alert", r.stderr)

    def test_control_api_refuses_unknown_rule_keys(self):
        with self.assertRaisesRegex(mockctl.MockError, 'unknown rule key \\\\"stauts\\\\"'):
            self.mock.add_rule(token=TOKEN, stauts=410)
        self.assertEqual(self.mock.rules(), [])

    def test_delete_requests_clears_the_record(self):
        self.push()
        self.assertEqual(len(self.mock.requests()), 1)
        self.mock.clear_requests()
        self.assertEqual(self.mock.requests(), [])


@needs_curl
class TestApnsTokenAuthStreams(ApnsCase):
    """--token-auth-initial-streams 1: one stream until a valid token, then --max-streams."""

    extra_args = ("--token-auth-initial-streams", "1", "--max-streams", "50")

    def test_second_stream_before_authentication_is_a_protocol_error(self):
        h2 = RawH2(self.mock.h2_port)
        self.assertEqual(h2.read_settings()[MAX_CONCURRENT_STREAMS], 1)
        h2.send_headers(1, apns_request_headers(self.jwt), end_stream=False)
        h2.send_headers(3, apns_request_headers(self.jwt), end_stream=False)
        frames = h2.read_until(lambda f: f[0] == RawH2.GOAWAY)
        h2.close()
        self.assertEqual(frames[-1][0], RawH2.GOAWAY)
        last, code, debug = goaway_fields(frames[-1])
        self.assertEqual((last, code), (1, 1))      # PROTOCOL_ERROR
        self.assertIn(b"max concurrent streams exceeded", debug)

    def test_valid_token_raises_the_limit_with_settings(self):
        h2 = RawH2(self.mock.h2_port)
        self.assertEqual(h2.read_settings()[MAX_CONCURRENT_STREAMS], 1)
        h2.send_headers(1, apns_request_headers(self.jwt), end_stream=False)
        h2.send_data(1, BODY)
        self.assertEqual(h2.read_settings()[MAX_CONCURRENT_STREAMS], 50)
        for stream in (3, 5, 7, 9):
            h2.send_headers(stream, apns_request_headers(self.jwt), end_stream=False)
        for stream in (3, 5, 7, 9):
            h2.send_data(stream, BODY)
        frames = h2.read_until(lambda f: f[0] == RawH2.HEADERS and f[2] == 9)
        h2.close()
        self.assertEqual(sorted(f[2] for f in frames if f[0] == RawH2.HEADERS), [1, 3, 5, 7, 9])
        self.assertNotIn(RawH2.GOAWAY, [f[0] for f in frames])

    @needs_h2load
    def test_max_concurrent_observed_stays_1_without_a_valid_token(self):
        url = self.mock.url("/3/device/" + TOKEN)
        self.mock.clear_stats()
        ok, failed, codes = h2load(url, 30, streams=10, headers=[
            ("apns-topic", TOPIC), ("authorization", "bearer " + apns_jwt(iss="OTHERTEAM0"))],
            body=BODY)
        stats = self.mock.stats()
        self.assertEqual(stats["max_concurrent_streams_observed"], 1)
        self.assertEqual(stats["responses"], {"403": stats["requests"]})
        self.assertEqual(codes["2xx"], 0)

        self.mock.clear_stats()
        ok, failed, codes = h2load(url, 300, streams=10, headers=[
            ("apns-topic", TOPIC), ("authorization", "bearer " + self.jwt)], body=BODY)
        stats = self.mock.stats()
        self.assertGreater(stats["max_concurrent_streams_observed"], 1)
        self.assertLessEqual(stats["max_concurrent_streams_observed"], 10)
        self.assertEqual(stats["responses"], {"200": ok})


@needs_curl
class TestApnsClockAndRecording(unittest.TestCase):

    def test_now_offset_expires_a_fresh_token(self):
        with mockctl.Mock("apns", CERTS, "--team-id", TEAM, "--key-id", KEY_ID, "--auth-key",
                          CERTS.apns_pub, "--now-offset", "3700") as mock:
            r = curl(mock.url("/3/device/" + TOKEN), body=BODY, headers=[
                ("apns-topic", TOPIC), ("authorization", "bearer " + apns_jwt())])
        self.assertEqual((r.status, r.body), (403, b'{"reason":"ExpiredProviderToken"}'))

    def test_no_record_keeps_counting_but_records_nothing(self):
        with mockctl.Mock("apns", CERTS, "--topic", TOPIC, record=False) as mock:
            r = curl(mock.url("/3/device/" + TOKEN), body=BODY,
                     headers=[("apns-topic", TOPIC)])
            self.assertEqual(r.status, 200)
            self.assertEqual(mock.requests(), [])
            self.assertEqual(mock.stats()["requests"], 1)

    def test_new_token_on_a_connection_within_the_interval_is_429(self):
        now = int(time.time())
        first, second = apns_jwt(iat=now - 10), apns_jwt(iat=now - 5)
        with mockctl.Mock("apns", CERTS, "--team-id", TEAM, "--key-id", KEY_ID, "--auth-key",
                          CERTS.apns_pub, "--token-update-interval", "1200") as mock:
            h2 = RawH2(mock.h2_port)
            h2.read_settings()
            bodies = []
            for stream, jwt in ((1, first), (3, first), (5, second)):
                h2.send_headers(stream, apns_request_headers(jwt), end_stream=False)
                h2.send_data(stream, BODY)
                frames = h2.read_until(lambda f: f[2] == stream and f[1] & 1 and
                                       f[0] in (RawH2.DATA, RawH2.HEADERS))
                bodies.append(b"".join(f[3] for f in frames
                                       if f[0] == RawH2.DATA and f[2] == stream))
            h2.close()
            self.assertEqual(bodies, [b"", b"", b'{"reason":"TooManyProviderTokenUpdates"}'])
            r = curl(mock.url("/3/device/" + TOKEN), body=BODY, headers=[
                ("apns-topic", TOPIC), ("authorization", "bearer " + second)])
            self.assertEqual(r.status, 200)

    def test_sigterm_exits_cleanly(self):
        for kind, args in (("apns", ()), ("fcm", ("--project-id", PROJECT,
                                                   "--service-account-key", CERTS.fcm_pub,
                                                   "--client-email", EMAIL))):
            with self.subTest(kind):
                mock = mockctl.Mock(kind, CERTS, *args).start()
                self.assertEqual(mock.stop(), 0, mock.log_text())


# ---- FCM ---------------------------------------------------------------------------

class FcmCase(unittest.TestCase):

    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.mock = mockctl.Mock("fcm", CERTS, "--project-id", PROJECT,
                                "--service-account-key", CERTS.fcm_pub,
                                "--client-email", EMAIL, *cls.extra_args).start()
        cls.token_uri = cls.mock.url("/token")
        cls.access_token = cls.exchange(cls.assertion()).json()["access_token"]

    @classmethod
    def tearDownClass(cls):
        stop_cleanly(cls.mock)

    def setUp(self):
        self.mock.clear_rules()
        self.mock.clear_requests()

    @classmethod
    def assertion(cls, **kw):
        return mockctl.fcm_assertion(CERTS.fcm_key, kw.pop("iss", EMAIL),
                                     kw.pop("aud", cls.token_uri), **kw)

    @classmethod
    def exchange(cls, assertion, grant_type=mockctl.JWT_BEARER):
        form = "grant_type=%s&assertion=%s" % (
            grant_type.replace(":", "%3A"), assertion)
        return curl(cls.mock.url("/token"), body=form.encode(),
                    headers=[("content-type", "application/x-www-form-urlencoded")])

    def send(self, message, project=PROJECT, access_token=None, **top):
        body = dict(top)
        if message is not None:
            body["message"] = message
        return curl(self.mock.url("/v1/projects/%s/messages:send" % project),
                    body=json.dumps(body).encode(),
                    headers=[("content-type", "application/json"),
                             ("authorization", "Bearer " + (access_token or self.access_token))])

    def assertGoogleError(self, r, code, status, message, details):
        expected = {"error": {"code": code, "message": message, "status": status}}
        if details:
            expected["error"]["details"] = details
        self.assertEqual((r.status, r.json()), (code, expected))
        self.assertEqual(r.headers["content-type"], "application/json; charset=UTF-8")


def fcm_error_detail(code):
    return {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}


def bad_request_detail(description, field=None):
    violation = {"description": description}
    if field is not None:
        violation["field"] = field
    return {"@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [violation]}


@needs_curl
class TestFcm(FcmCase):

    def test_token_exchange_returns_a_bearer_token(self):
        r = self.exchange(self.assertion())
        body = r.json()
        self.assertEqual((r.status, set(body)), (200, {"access_token", "expires_in",
                                                       "token_type"}))
        self.assertRegex(body["access_token"], r"^ya29\.mock-[0-9a-f]{32}$")
        self.assertEqual((body["expires_in"], body["token_type"]), (3600, "Bearer"))
        self.assertNotEqual(body["access_token"], self.access_token)

    def test_token_exchange_refusals(self):
        now = int(time.time())
        short_lived = ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                       "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        good = self.assertion()
        tampered = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        cases = [
            ("grant type", self.exchange(good, grant_type="password"),
             "unsupported_grant_type", "Invalid grant_type: password"),
            ("signature", self.exchange(tampered), "invalid_grant", "Invalid JWT Signature."),
            ("issuer", self.exchange(self.assertion(iss="someone@else.example")),
             "invalid_grant", "Invalid grant: account not found"),
            ("audience", self.exchange(self.assertion(aud="https://oauth2.googleapis.com/token")),
             "invalid_grant", "Invalid JWT: Failed audience check. The right audience is "
             + self.token_uri),
            ("scope", self.exchange(self.assertion(scope="https://example.com/other")),
             "invalid_scope", "Invalid OAuth scope or ID token audience provided."),
            ("lifetime", self.exchange(self.assertion(lifetime=7200)), "invalid_grant",
             short_lived),
            ("expired", self.exchange(self.assertion(iat=now - 7200)), "invalid_grant",
             short_lived),
        ]
        for what, r, error, description in cases:
            with self.subTest(what):
                self.assertEqual((r.status, r.json()),
                                 (400, {"error": error, "error_description": description}))

    def test_send_returns_message_name_and_is_recorded(self):
        message = {"token": "dev:APA91b-token_1", "data": {"room": "r1", "event": "message"},
                   "android": {"priority": "HIGH", "ttl": "3.5s"}}
        r = self.send(message)
        self.assertEqual(r.status, 200, r.body)
        self.assertRegex(r.json()["name"],
                         r"^projects/%s/messages/0:\d+%%[0-9a-f]{16}$" % PROJECT)
        [rec] = self.mock.requests()
        self.assertEqual((rec["path"], rec["status"]),
                         ("/v1/projects/%s/messages:send" % PROJECT, 200))
        self.assertEqual(json.loads(rec["body"]), {"message": message})
        self.assertEqual(rec["headers"]["authorization"], "Bearer " + self.access_token)

    def test_validate_only_returns_the_fake_message_id(self):
        r = self.send({"topic": "news"}, validate_only=True)
        self.assertEqual(r.json(), {"name": "projects/%s/messages/fake_message_id" % PROJECT})

    def test_unknown_bearer_is_unauthenticated_without_fcm_error(self):
        r = self.send({"token": "abc"}, access_token="ya29.forged")
        self.assertGoogleError(r, 401, "UNAUTHENTICATED",
                               "Request had invalid authentication credentials. Expected "
                               "OAuth 2 access token, login cookie or other valid "
                               "authentication credential. See https://developers.google.com/"
                               "identity/sign-in/web/devconsole-project.", None)
        self.assertEqual(r.headers["www-authenticate"],
                         'Bearer realm="https://accounts.google.com/"')

    def test_other_project_is_permission_denied(self):
        r = self.send({"token": "abc"}, project="someone-else")
        self.assertGoogleError(r, 403, "PERMISSION_DENIED",
                               "Permission 'cloudmessaging.messages.create' denied on resource "
                               "'//cloudresourcemanager.googleapis.com/projects/someone-else' "
                               "(or it may not exist).", None)

    def test_message_validation_errors(self):
        cases = [
            ("data value not a string", {"token": "abc", "data": {"a": "1", "b": 2}},
             "Invalid value at 'message.data[1].value' (TYPE_STRING), 2", None, True),
            ("two targets", {"token": "abc", "topic": "news"},
             "Invalid JSON payload received. Oneof field 'target' is already set. "
             "Cannot set 'topic'", None, True),
            ("no target", {"data": {"a": "1"}}, "Recipient of the message is not set.",
             "INVALID_ARGUMENT", False),
            ("priority", {"token": "abc", "android": {"priority": "URGENT"}},
             "Invalid value at 'message.android.priority' (type.googleapis.com/"
             "google.firebase.fcm.v1.AndroidMessagePriority), \"URGENT\"", None, True),
            ("ttl", {"token": "abc", "android": {"ttl": "10"}},
             "Invalid value at 'message.android.ttl' (type.googleapis.com/"
             "google.protobuf.Duration), \"10\"", None, True),
            ("unknown field", {"token": "abc", "badge": 1},
             "Invalid JSON payload received. Unknown name \"badge\" at 'message': "
             "Cannot find field.", None, True),
            ("too big", {"token": "abc", "data": {"x": "y" * 4096}}, "Message is too big",
             "INVALID_ARGUMENT", False),
        ]
        for what, message, text, code, bad_request in cases:
            with self.subTest(what):
                details = ([fcm_error_detail(code)] if code else []) + \
                    ([bad_request_detail(text)] if bad_request else [])
                self.assertGoogleError(self.send(message), 400, "INVALID_ARGUMENT", text,
                                       details)
        r = self.send({"token": "not a token"})
        self.assertGoogleError(r, 400, "INVALID_ARGUMENT",
                               "The registration token is not a valid FCM registration token",
                               [fcm_error_detail("INVALID_ARGUMENT"), bad_request_detail(
                                   "The registration token is not a valid FCM registration "
                                   "token", "message.token")])
        self.assertEqual(self.send({"token": "abc", "data": {"x": "y" * 4000}}).status, 200)

    def test_rule_unregistered_answers_the_google_envelope(self):
        self.mock.add_rule(token="gone", status=404, error_code="UNREGISTERED")
        self.assertGoogleError(self.send({"token": "gone"}), 404, "NOT_FOUND",
                               "Requested entity was not found.",
                               [fcm_error_detail("UNREGISTERED")])
        self.assertEqual(self.send({"token": "alive"}).status, 200)

    def test_rule_quota_exceeded_sends_retry_after(self):
        self.mock.add_rule(status=429, retry_after=60, message="Quota exceeded.")
        r = self.send({"token": "abc"})
        self.assertGoogleError(r, 429, "RESOURCE_EXHAUSTED", "Quota exceeded.",
                               [fcm_error_detail("QUOTA_EXCEEDED")])
        self.assertEqual(r.headers["retry-after"], "60")

    def test_rule_on_the_token_endpoint(self):
        self.mock.add_rule(endpoint="token", status=400, error="invalid_grant",
                           error_description="Invalid JWT Signature.", times=1)
        r = self.exchange(self.assertion())
        self.assertEqual((r.status, r.json()), (400, {"error": "invalid_grant",
                                                      "error_description":
                                                      "Invalid JWT Signature."}))
        self.assertEqual(self.exchange(self.assertion()).status, 200)

    def test_exceeding_max_concurrent_streams_is_a_goaway(self):
        h2 = RawH2(self.mock.h2_port)
        self.assertEqual(h2.read_settings()[MAX_CONCURRENT_STREAMS], 100)
        path = "/v1/projects/%s/messages:send" % PROJECT
        for stream in range(1, 2 * 101 + 1, 2):
            h2.send_headers(stream, [(":method", "POST"), (":scheme", "https"),
                                     (":authority", "localhost"), (":path", path),
                                     ("authorization", "Bearer " + self.access_token)],
                            end_stream=False)
        frames = h2.read_until(lambda f: f[0] == RawH2.GOAWAY)
        h2.close()
        self.assertEqual(frames[-1][0], RawH2.GOAWAY)
        last, code, debug = goaway_fields(frames[-1])
        self.assertEqual((last, code, debug),
                         (199, 1, b"request HEADERS: max concurrent streams exceeded"))


@needs_curl
class TestFcmTokenExpiry(FcmCase):

    extra_args = ("--token-lifetime", "1")

    def test_expired_access_token_is_unauthenticated(self):
        self.assertEqual(self.send({"token": "abc"}).status, 200)
        time.sleep(1.1)
        self.assertEqual(self.send({"token": "abc"}).status, 401)


if __name__ == "__main__":
    harness.main()
