"""The API as an attacker on loopback meets it: routes walked without a key in every
spelling, requests that used to end the daemon or leak, and connections and bodies
the attacker controls (limits, deadlines, descriptors running out).

The route walk reads the table from `pushrelayd --routes`, so a route added later is
attacked without editing this file."""

import json
import os
import urllib.parse
import resource
import socket
import subprocess
import time

import harness
from harness import DaemonTestCase, apns_device, run_pushrelayd

SAMPLE_IDS = {"device_id": "dev-1", "client_id": "alice", "room_id": "room-1",
              "push_id": "p-1"}


def routes():
    """[(method, pattern, access)] from the daemon binary itself."""
    rc, out, err = run_pushrelayd(["--routes"])
    assert rc == 0, err
    table = []
    for line in out.splitlines():
        method, pattern, access = line.split()
        table.append((method, pattern, access))
    return table


def concrete(pattern):
    """The pattern with sample ids in place of its {params}."""
    parts = []
    for seg in pattern.split("/"):
        if seg.startswith("{"):
            seg = SAMPLE_IDS[seg[1:-1]]
        parts.append(seg)
    return "/".join(parts)


def spellings(path):
    """Ways to spell a path that a key check on the raw text could miss."""
    out = set()
    segs = path.split("/")[1:]
    # Percent-encode each letter in turn (%76 for v), and all of them.
    for i, ch in enumerate(path):
        if ch.isalnum():
            out.add(path[:i] + "%%%02X" % ord(ch) + path[i + 1:])
            out.add(path[:i] + "%%%02x" % ord(ch) + path[i + 1:])
    out.add("".join("%%%02X" % ord(c) if c.isalnum() else c for c in path))
    # Slashes: encoded, doubled; dot segments; a trailing slash; case.
    out.add(path.replace("/", "%2F"))
    out.add("/" + "%2F".join(segs))
    out.add(path.replace("/", "//"))
    out.add("//" + path.lstrip("/"))
    out.add("/." + path)
    out.add("/./" + path.lstrip("/"))
    out.add("/x/.." + path)
    out.add("/../" + path.lstrip("/"))
    out.add(path + "/")
    out.add(path + "/.")
    out.add(path.upper())
    out.add(path[:2].upper() + path[2:])
    out.add(path + "%00")
    out.add(path + "?x=1")
    out.add(path + "#frag")
    out.discard(path)
    return sorted(out)


def raw_request(port, data, timeout=5.0, read=True):
    """Send bytes on a fresh connection; the whole answer (until the server closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return s
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        if read:
            s.close()


def parse_answer(raw):
    """(status, headers lower-cased, body bytes) of one HTTP/1.x answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def answer_until(sock, timeout):
    """Read one answer (headers and Content-Length body) from sock."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status, headers, body = parse_answer(data)
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


class AttackTestCase(DaemonTestCase):

    def assertJSONError(self, status, headers, body, want_status, code):
        self.assertEqual(status, want_status, body)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"))
        parsed = json.loads(body.decode("utf-8"))     # valid UTF-8 and JSON, or raise
        self.assertEqual(set(parsed), {"error"})
        self.assertEqual(parsed["error"]["code"], code)
        return parsed

    def assertAlive(self, d):
        self.assertTrue(d.running(), "the daemon exited:\n" + d.log_text()[-3000:])
        status, _, body, _ = d.request("GET", "/healthz", key=None)
        self.assertEqual(status, 200)

    def assertLogIsUTF8(self, d):
        d.log_bytes().decode("utf-8")    # raises on a byte that is not UTF-8


class RouteWalkTest(AttackTestCase):
    """Every route, every spelling: without a good key nothing is reached."""

    @classmethod
    def setUpClass(cls):
        cls.d = harness.Daemon()
        cls.addClassCleanup(cls.d.cleanup)
        cls.d.start()
        # Data worth stealing: a device with its token, a member, a push.
        status, _, _, raw = cls.d.request("PUT", "/v1/devices/dev-1", apns_device("alice"))
        assert status == 201, raw
        status, _, _, raw = cls.d.request("PUT", "/v1/rooms/room-1/members/alice")
        assert status == 201, raw
        cls.routes = routes()

    def test_the_route_table_lists_every_route_with_its_access(self):
        table = {(m, p): a for m, p, a in self.routes}
        self.assertEqual(table[("GET", "/healthz")], "public")
        self.assertEqual(table[("GET", "/readyz")], "public")
        self.assertEqual(table[("GET", "/metrics")], "metrics")
        self.assertEqual(table[("POST", "/v1/ingest/ably")], "public")
        self.assertEqual(table[("GET", "/v1/clients/{client_id}/devices")], "key")
        self.assertGreaterEqual(len(self.routes), 18)
        for (method, pattern), access in table.items():
            if pattern.startswith("/v1/") and pattern != "/v1/ingest/ably":
                self.assertEqual(access, "key", pattern)

    def _walk(self, authorization):
        """Every route in every spelling with this Authorization (None: none)."""
        tried = 0
        for method, pattern, access in self.routes:
            path = concrete(pattern)
            paths = spellings(path)
            if access == "key":
                paths.append(path)
            else:
                # A public route spelt with encoded letters is that route: public.
                paths = [p for p in paths if urllib.parse.unquote(p.split("?")[0]
                                                                  .split("#")[0]) != path]
            for p in paths:
                headers = {"Content-Type": "application/json", "Connection": "close"}
                if authorization is not None:
                    headers["Authorization"] = authorization
                body = b'{"client_id":"mallory","platform":"apns","app_id":"x",' \
                    b'"token":"00"}' if method in ("PUT", "POST") else b""
                head = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, p)
                head += "".join("%s: %s\r\n" % kv for kv in headers.items())
                head += "Content-Length: %d\r\n\r\n" % len(body)
                raw = raw_request(self.d.port, head.encode("latin-1") + body)
                status, rh, rbody = parse_answer(raw)
                self.assertIn(status, (401, 404), "%s %s -> %d %r" % (method, p, status,
                                                                     rbody))
                parsed = json.loads(rbody.decode("utf-8"))
                self.assertEqual(set(parsed), {"error"}, "%s %s leaked %r" % (method, p,
                                                                           rbody))
                self.assertNotIn(b"mallory", rbody)
                if authorization is None or "Bearer" in authorization:
                    if status == 404:
                        # Only a good key learns that a path does not exist.
                        self.fail("%s %s answered 404 without a good key" % (method, p))
                    self.assertEqual(rh.get("www-authenticate"), 'Bearer realm="pushrelay"')
                tried += 1
        return tried

    def test_no_key_reaches_nothing_in_any_spelling(self):
        self.assertGreater(self._walk(None), 500)
        self.assertAfterWalk()

    def test_a_wrong_key_reaches_nothing_in_any_spelling(self):
        self._walk("Bearer " + "0" * 64)
        self.assertAfterWalk()

    def test_bearer_with_nothing_after_it_reaches_nothing(self):
        self._walk("Bearer")
        self._walk("Bearer ")
        self._walk("bearer  ")
        self.assertAfterWalk()

    def test_the_reported_bypass_spelling_is_refused(self):
        raw = raw_request(self.d.port, b"GET /%761/clients/alice/devices HTTP/1.1\r\n"
                          b"Host: x\r\n\r\n")
        status, headers, body = parse_answer(raw)
        self.assertJSONError(status, headers, body, 401, "unauthorized")
        self.assertNotIn(b"token", body)

    def assertAfterWalk(self):
        # Nothing was written, and the daemon still serves.
        rows = self.d.query("SELECT device_id, client_id FROM devices ORDER BY device_id")
        self.assertEqual(rows, [{"device_id": "dev-1", "client_id": "alice"}])
        rows = self.d.query("SELECT room_id, client_id FROM memberships")
        self.assertEqual(rows, [{"room_id": "room-1", "client_id": "alice"}])
        self.assertAlive(self.d)


class CrashRegressionTest(AttackTestCase):
    """The requests that ended or bloated the daemon before, with and without a key."""

    def setUp(self):
        self.d = self.start_daemon()

    def test_a_path_that_is_not_utf8_gets_a_json_error(self):
        raw = raw_request(self.d.port, b"GET /\xff HTTP/1.0\r\n\r\n")
        self.assertJSONError(*parse_answer(raw), 401, "unauthorized")
        raw = raw_request(self.d.port, b"GET /\xff HTTP/1.0\r\nAuthorization: Bearer " +
                          self.d.key.encode() + b"\r\n\r\n")
        err = self.assertJSONError(*parse_answer(raw), 404, "not_found")
        self.assertEqual(err["error"]["message"], "no such endpoint: /\ufffd")
        self.assertAlive(self.d)
        self.assertLogIsUTF8(self.d)

    def test_a_long_utf8_path_cut_inside_a_character_gets_a_json_error(self):
        for pad in range(3):
            path = "/v1/" + "x" * pad + "\u20ac" * 600
            raw = raw_request(self.d.port, b"GET " + path.encode("utf-8") +
                              b" HTTP/1.0\r\nAuthorization: Bearer " +
                              self.d.key.encode() + b"\r\n\r\n")
            err = self.assertJSONError(*parse_answer(raw), 404, "not_found")
            message = err["error"]["message"]
            self.assertTrue(message.startswith("no such endpoint: /v1/"))
            self.assertLessEqual(len(message.encode("utf-8")), 512)
            self.assertNotIn("\ufffd", message)    # cut on a character, not mangled
        self.assertAlive(self.d)

    def test_an_invalid_json_body_cut_inside_a_character_gets_a_json_error(self):
        for body in (b'{"a":"\xe2\x82', b'{"\xff":1}', b'\xc3', b'{"a":"\xed\xa0\x80"}'):
            status, headers, parsed, raw = self.d.request(
                "PUT", "/v1/devices/dev-1", raw_body=body)
            self.assertEqual(status, 400, raw)
            raw.decode("utf-8")
            self.assertEqual(parsed["error"]["code"], "invalid_json")
        self.assertAlive(self.d)
        self.assertLogIsUTF8(self.d)

    def test_paths_with_too_many_segments_do_not_leak(self):
        def rss_kb():
            with open("/proc/%d/status" % self.d.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
            return 0
        path = "/" + "/".join("segment-%d" % i for i in range(12))
        request = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()

        def burst(n):
            s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
            f = s.makefile("rb")
            for _ in range(n):
                s.sendall(request)
                line = f.readline()
                self.assertIn(b" 401 ", line)
                length = 0
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":")[1])
                    if h.lower().startswith(b"connection: close"):
                        pass
                f.read(length)
                # A 401 closes the connection: open the next one.
                s.close()
                s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
                f = s.makefile("rb")
            s.close()
        with open("/proc/%d/maps" % self.d.proc.pid) as f:
            sanitized = "libasan" in f.read()
        burst(2000)
        before = rss_kb()
        burst(20000)
        grown = rss_kb() - before
        self.assertAlive(self.d)
        if sanitized:
            # ASan keeps freed memory in quarantine, so RSS says nothing: stop the
            # daemon cleanly and let LeakSanitizer look (cleanup fails on a report).
            self.d.stop()
            self.assertIsNone(self.d.sanitizer_report())
            return
        # 20,000 such requests leaked about 280 MB before the fix.
        self.assertLess(grown, 16 * 1024, "RSS grew by %d kB" % grown)


class HeadCheckTest(AttackTestCase):
    """Decided on the head, before the body: the project's JSON errors."""

    def setUp(self):
        self.d = self.start_daemon(config={"api": {"max_body_size": "64k"}})

    def test_an_unauthenticated_body_is_never_awaited(self):
        # 50 MB announced, nothing sent: the 401 comes at once, the body is not read.
        s = raw_request(self.d.port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\n"
                        b"Content-Length: 50000000\r\n\r\n", read=False)
        try:
            started = time.monotonic()
            status, headers, body = answer_until(s, 3.0)
            self.assertLess(time.monotonic() - started, 2.0)
            self.assertJSONError(status, headers, body, 401, "unauthorized")
            self.assertEqual(headers.get("connection"), "close")
            # The client may go on sending: the server drops it and closes.
            try:
                for _ in range(64):
                    s.sendall(b"x" * 65536)
            except OSError:
                pass
        finally:
            s.close()
        self.assertAlive(self.d)

    def test_expect_continue_without_a_key_gets_401_not_100(self):
        s = raw_request(self.d.port, b"PUT /v1/devices/d HTTP/1.1\r\nHost: x\r\n"
                        b"Expect: 100-continue\r\nContent-Length: 10\r\n\r\n", read=False)
        try:
            status, headers, body = answer_until(s, 3.0)
        finally:
            s.close()
        self.assertJSONError(status, headers, body, 401, "unauthorized")

    def test_a_content_length_over_the_limit_gets_413_before_the_body(self):
        s = raw_request(self.d.port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                        b"Authorization: Bearer " + self.d.key.encode() + b"\r\n"
                        b"Content-Type: application/json\r\n"
                        b"Content-Length: 70000\r\n\r\n", read=False)
        try:
            status, headers, body = answer_until(s, 3.0)
        finally:
            s.close()
        err = self.assertJSONError(status, headers, body, 413, "payload_too_large")
        self.assertEqual(err["error"]["message"], "request body exceeds 65536 bytes")

    def test_a_content_length_that_is_not_a_number_gets_400(self):
        for value in (b"ten", b"-1", b"1e3", b"", b"99999999999999999999999"):
            raw = raw_request(self.d.port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                              b"Authorization: Bearer " + self.d.key.encode() + b"\r\n"
                              b"Content-Length: " + value + b"\r\n\r\n")
            err = self.assertJSONError(*parse_answer(raw), 400, "bad_request")
            self.assertEqual(err["error"]["message"],
                             "Content-Length is not a number of bytes")

    def test_a_malformed_request_line_gets_400_json(self):
        for line in (b"garbage", b"GET /", b"GET / HTTP/9.9", b"GET / HTTP/1.1 x",
                     b"\xff\xfe / HTTP/1.1", b""):
            raw = raw_request(self.d.port, line + b"\r\nHost: x\r\n\r\n")
            self.assertJSONError(*parse_answer(raw), 400, "bad_request")
        raw = raw_request(self.d.port, b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n")
        self.assertJSONError(*parse_answer(raw), 400, "bad_request")
        self.assertAlive(self.d)

    def test_an_unknown_method_with_a_target_that_does_not_parse_is_refused(self):
        # Found by fuzz_http: the key check freed a URI that had not parsed (NULL).
        for target in (b":x", b":TTPGET /v1/clients/alice/devices", b"http://[", b"%"):
            raw = raw_request(self.d.port, b"BREWD/ " + target + b" HTTP/1.1\r\n"
                              b"Authorization: Bearer " + self.d.key.encode() + b"\r\n\r\n")
            status, headers, body = parse_answer(raw)
            self.assertIn(status, (400, 405), body)
            json.loads(body.decode("utf-8"))
            raw = raw_request(self.d.port, b"BREWD/ " + target + b" HTTP/1.1\r\n\r\n")
            self.assertJSONError(*parse_answer(raw), 401, "unauthorized")
        self.assertAlive(self.d)

    def test_an_unknown_method_gets_401_without_a_key_and_405_with_one(self):
        raw = raw_request(self.d.port, b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertJSONError(*parse_answer(raw), 401, "unauthorized")
        raw = raw_request(self.d.port, b"BREW /v1/push HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer " + self.d.key.encode() + b"\r\n\r\n")
        err = self.assertJSONError(*parse_answer(raw), 405, "method_not_allowed")
        self.assertEqual(err["error"]["message"], "method BREW is not supported")
        raw = raw_request(self.d.port, b"CONNECT example.com:443 HTTP/1.1\r\n"
                          b"Authorization: Bearer " + self.d.key.encode() + b"\r\n\r\n")
        self.assertJSONError(*parse_answer(raw), 405, "method_not_allowed")

    def test_headers_over_the_limit_get_431(self):
        raw = raw_request(self.d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                          b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n")
        err = self.assertJSONError(*parse_answer(raw), 431, "headers_too_large")
        self.assertEqual(err["error"]["message"],
                         "the request line and headers exceed 16384 bytes")

    def test_pipelined_requests_are_answered_in_order(self):
        raw = raw_request(self.d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /v1/stats HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(raw.count(b"HTTP/1.1 200 OK"), 1)
        self.assertEqual(raw.count(b"HTTP/1.1 401 Unauthorized"), 1)
        # The 401 closes the connection: the third is not answered.
        self.assertLess(raw.index(b"200 OK"), raw.index(b"401 Unauthorized"))

    def test_metrics_need_a_key_when_not_public(self):
        d = self.start_daemon(config={"api": {"metrics_public": "no"}})
        status, headers, _, raw = d.request("GET", "/metrics", key=None)
        self.assertEqual(status, 401, raw)
        status, _, _, raw = d.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"pushrelay_", raw)
        status, _, _, _ = self.d.request("GET", "/metrics", key=None)
        self.assertEqual(status, 200)


class ConnectionLimitTest(AttackTestCase):
    """Connections: per peer, in total, deadlines, descriptors running out."""

    def test_a_peer_past_its_limit_is_closed_at_once(self):
        d = self.start_daemon(config={"api": {"max_connections_per_peer": "5"}})
        held = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(5)]
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", d.port), timeout=3)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            self.assertEqual(extra.recv(100), b"")
        except ConnectionResetError:
            pass
        extra.close()
        held.pop().close()
        time.sleep(0.3)
        self.assertAlive(d)
        status, _, _, raw = d.request("GET", "/metrics", key=None)
        self.assertEqual(status, 200)
        self.assertIn(b'\npushrelay_api_connections_closed_total{reason="peer_limit"} 1\n',
                      raw)
        for s in held:
            s.close()

    def test_at_the_total_limit_new_connections_wait(self):
        d = self.start_daemon(config={"api": {"max_connections": "4"}})
        held = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(4)]
        time.sleep(0.3)
        waiting = socket.create_connection(("127.0.0.1", d.port), timeout=1)
        waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with self.assertRaises(socket.timeout):
            waiting.recv(100)
        held.pop().close()
        waiting.settimeout(3)
        status, _, body = answer_until(waiting, 3)
        self.assertEqual(status, 200)
        waiting.close()
        for s in held:
            s.close()

    def test_a_slow_loris_of_500_connections_is_cut_off_within_request_timeout(self):
        d = self.start_daemon(config={"api": {"request_timeout": "2s",
                                              "header_timeout": "1s"}})
        part = b"GET /healthz HTTP/1.1\r\nX-Slow: "
        # Each connection sends its first byte as soon as it is open, so its header
        # deadline runs from then; each is timed from its own first byte, so a slow
        # machine's connect burst does not count against the daemon.
        first_byte = {}
        socks = []
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(part[:1])
            first_byte[s] = time.monotonic()
            s.setblocking(False)
            socks.append(s)
        closed_after = {}
        i = 1
        open_socks = list(socks)
        give_up = time.monotonic() + 15
        while open_socks and time.monotonic() < give_up:
            still = []
            for s in open_socks:
                try:
                    data = s.recv(100)
                    if data == b"":             # closed by the daemon
                        closed_after[s] = time.monotonic() - first_byte[s]
                        continue
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed_after[s] = time.monotonic() - first_byte[s]
                    continue
                try:
                    s.send(part[i:i + 1] if i < len(part) else b"a")
                except (BrokenPipeError, ConnectionResetError):
                    closed_after[s] = time.monotonic() - first_byte[s]
                    continue
                except BlockingIOError:
                    pass
                still.append(s)
            open_socks = still
            i += 1
            time.sleep(0.05)
        self.assertEqual(open_socks, [], "%d connections still open after 15 s" %
                         len(open_socks))
        # Cut at the header deadline (1 s after the first byte; about 1.05 s measured),
        # within request_timeout (2 s); the slack is for a loaded machine (sanitizers).
        slowest = max(closed_after.values())
        self.assertLess(slowest, 4.5, "the slowest connection was cut after %.2f s" %
                        slowest)
        for s in socks:
            s.close()
        self.assertAlive(d)
        status, _, _, raw = d.request("GET", "/metrics", key=None)
        self.assertIn(b'\npushrelay_api_connections_closed_total{reason="deadline"} 500\n',
                      raw)

    def test_a_body_trickled_past_request_timeout_is_cut_off(self):
        d = self.start_daemon(config={"api": {"request_timeout": "2s",
                                              "header_timeout": "1s"}})
        s = raw_request(d.port, b"PUT /v1/devices/d HTTP/1.1\r\nHost: x\r\n"
                        b"Authorization: Bearer " + d.key.encode() + b"\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
                        read=False)
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 5:
            try:
                s.sendall(b" ")
                s.settimeout(0.1)
                if s.recv(100) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        s.close()
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - started, 3.0)

    def test_running_out_of_descriptors_backs_off_without_spinning(self):
        d = self.new_daemon()
        limit = 48

        def low_nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        log = open(d.log_path, "ab")
        d.proc = subprocess.Popen([harness.daemon_path(), "-c", d.config_path],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  cwd=d.tmp, env=d.env(), preexec_fn=low_nofile)
        log.close()
        d.wait_ready()
        socks = []
        for _ in range(limit * 2):
            try:
                socks.append(socket.create_connection(("127.0.0.1", d.port), timeout=2))
            except OSError:
                break

        def cpu_s():
            with open("/proc/%d/stat" % d.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        before = cpu_s()
        time.sleep(3)
        spent = cpu_s() - before
        self.assertLess(spent, 1.0, "the daemon spun %.2f s of CPU in 3 s" % spent)
        lines = [ln for ln in d.log_lines() if "accept() failed" in ln]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 2, "\n".join(lines))
        for s in socks:
            s.close()
        time.sleep(1.2)
        self.assertAlive(d)

    def test_an_idle_keep_alive_connection_is_closed_after_request_timeout(self):
        d = self.start_daemon(config={"api": {"request_timeout": "1s"}})
        s = raw_request(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", read=False)
        status, _, _ = answer_until(s, 2)
        self.assertEqual(status, 200)
        started = time.monotonic()
        s.settimeout(4)
        self.assertEqual(s.recv(100), b"")
        self.assertLess(time.monotonic() - started, 2.5)
        s.close()


if __name__ == "__main__":
    harness.main()
