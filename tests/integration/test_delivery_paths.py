"""Delivery paths end to end: through an HTTP CONNECT proxy, under an APNs stream limit,
with APNs certificate auth, and across credential reloads; and the sample credentials of
certs.example/.

The real pushrelayd talks TLS + HTTP/2 to tests/mocks/mock_apns and mock_fcm on loopback,
trusting the CA that tests/gen-certs.sh makes. The CONNECT proxy and the TLS server that
checks client certificates are written here with the standard library. Every test starts
its own daemon, mocks and proxy on random loopback ports, so this file runs in parallel
with the others.
"""

import base64
import configparser
import json
import os
import re
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import (APP, FCM_SEND_PATH, KEY_ID, MAX_ATTEMPTS,  # noqa: E402
                      PROJECT, STATES, TEAM, UUID4_RE)
from harness import uid  # noqa: E402
from mockctl import jwt_decode, openssl_verifies, raw_to_der  # noqa: E402

NEW_KEY_ID = "NEW456KEYZ"

CERTS = None
_TMP = None


def setUpModule():
    global CERTS, _TMP
    CERTS, _TMP = mockctl.module_certs("pushrelay-paths-")


def tmp_path(name):
    """A fresh path in the module's temporary directory."""
    return os.path.join(_TMP, "%s-%s" % (uid(), name))


def openssl(*args, stdin=None):
    """Run the openssl CLI; its stdout (bytes). Fails the test on a non-zero exit."""
    p = subprocess.run(["openssl"] + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args),
                                                        p.stderr.decode(errors="replace")))
    return p.stdout


# ---- an HTTP CONNECT proxy -----------------------------------------------------------

class ConnectProxy:
    """An HTTP CONNECT proxy on loopback that records every request it gets.

    It reads "CONNECT host:port HTTP/1.1" and its headers, connects to the target, answers
    200 and pipes bytes both ways until either side closes. With refuse (a status line
    such as "403 Forbidden") it answers that instead and closes, connecting nowhere.
    """

    def __init__(self, refuse=None):
        self.refuse = refuse
        self.lock = threading.Lock()
        self.records = []           # {"request_line", "headers", "target", "tunnelled"}
        self.stopping = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _handle(self, sock):
        sock.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk or len(data) > 65536:
                    return
                data += chunk
        except OSError:
            return
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts = lines[0].split(" ")
        record = {"request_line": lines[0], "headers": headers,
                  "target": parts[1] if len(parts) == 3 else None, "tunnelled": False}
        with self.lock:
            self.records.append(record)
        if len(parts) != 3 or parts[0] != "CONNECT":
            sock.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if self.refuse is not None:
            sock.sendall(("HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                          % self.refuse).encode())
            return
        host, _, port = parts[1].rpartition(":")
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError):
            sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with self.lock:
            record["tunnelled"] = True
        try:
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            self._pipe(sock, upstream)
        finally:
            upstream.close()

    def _pipe(self, a, b):
        peer = {a: b, b: a}
        while not self.stopping.is_set():
            try:
                readable, _, _ = select.select([a, b], [], [], 0.1)
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
            except OSError:
                return

    def connects(self):
        with self.lock:
            return [dict(r) for r in self.records]

    def tunnels(self):
        """How many CONNECTs were answered 200 and connected to their target."""
        return len([r for r in self.connects() if r["tunnelled"]])

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


# ---- a TLS server that checks client certificates --------------------------------------

class ClientCertServer:
    """A TLS server on loopback that requires a client certificate signed by client_ca.

    Each handshake is recorded, with the DER certificate the client presented or the
    error that ended it; then the connection is closed (no HTTP/2 is spoken).
    """

    def __init__(self, client_ca):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(CERTS.server_cert, CERTS.server_key)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_verify_locations(client_ca)
        self.ctx.set_alpn_protocols(["h2"])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.handshakes = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                tls = self.ctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                with self.lock:
                    self.handshakes.append({"error": str(e)})
                conn.close()
                continue
            with self.lock:
                self.handshakes.append({"der": tls.getpeercert(binary_form=True),
                                        "alpn": tls.selected_alpn_protocol()})
            tls.close()

    def wait_for_handshake(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.handshakes:
                    return list(self.handshakes)
            if time.monotonic() > deadline:
                return []
            time.sleep(0.02)

    def stop(self):
        self.stopping.set()
        self.thread.join(2)
        self.sock.close()


# ---- a daemon with mocks -----------------------------------------------------------

PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                   "ALL_PROXY", "no_proxy", "NO_PROXY")


class EnvDaemon(harness.Daemon):
    """A daemon with extra environment variables (None: removed)."""

    extra_env = {}

    def env(self):
        env = super().env()
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env


class PathCase(harness.DaemonTestCase):
    """Each test starts its own mocks, proxy and daemon; all are stopped after it."""

    def setUp(self):
        self.log_start = 0

    # -- processes --

    def start_mock(self, kind, *args):
        mock = mockctl.Mock(kind, CERTS, *args,
                            log_path=tmp_path("mock_%s.log" % kind)).start()
        self.addCleanup(self._stop_mock, mock)
        return mock

    def _stop_mock(self, mock):
        if mock.proc is None:
            return
        status = mock.stop()
        self.assertEqual(status, 0, "mock_%s exited with %s; log:\n%s"
                         % (mock.kind, status, mock.log_text()))

    def apns_mock(self, *extra):
        return self.start_mock("apns", *fixtures.apns_mock_args(CERTS), *extra)

    def fcm_mock(self, *extra):
        return self.start_mock("fcm", *fixtures.fcm_mock_args(CERTS), *extra)

    def proxy(self, refuse=None):
        proxy = ConnectProxy(refuse)
        self.addCleanup(proxy.stop)
        return proxy

    def apns_section(self, mock, **options):
        return fixtures.apns_section(CERTS, mock.url(""), **options)

    def fcm_section(self, mock, account=None, **options):
        if account is None:
            account = fixtures.fcm_account(CERTS, tmp_path("sa.json"), mock.url("/token"))
        return fixtures.fcm_section(CERTS, account, mock.url(""), **options)

    def daemon_with(self, *sections, delivery=None, env=None):
        """Start a daemon with these provider sections (dicts) merged in."""
        config = {"delivery": fixtures.delivery_config(**(delivery or {})),
                  "store": {"synchronous": "normal"}}
        for section in sections:
            config.update(section)
        cls = type("EnvDaemon", (EnvDaemon,), {"extra_env": dict(env or {})})
        daemon = cls(config=config)
        self.addCleanup(daemon.cleanup)
        daemon.start()
        self.daemon = daemon
        return daemon

    # -- the API --

    def register(self, platform, client_id, device_id=None, app_id=None, **extra):
        """Register a new device; returns the stored device (token included)."""
        device_id = device_id or "%s-%s" % (platform, uid())
        if platform == "apns":
            body = harness.apns_device(client_id=client_id, app_id=app_id or APP, **extra)
        else:
            body = harness.fcm_device(client_id=client_id, app_id=app_id or PROJECT, **extra)
        st, _, stored, raw = self.daemon.request(
            "PUT", "/v1/devices/" + harness.quote(device_id), body=body)
        self.assertEqual(st, 201, raw)
        return stored

    def push(self, recipients, notification, expect_devices):
        st, _, body, raw = self.daemon.request(
            "POST", "/v1/push", body={"recipients": recipients, "notification": notification})
        self.assertEqual(st, 202, raw)
        self.assertEqual(body["devices"], expect_devices, raw)
        return body

    def wait_finished(self, push_id, timeout=10.0):
        """Poll GET /v1/push/{id} until finished_at is set; the final answer."""
        return fixtures.wait_push_finished(self, self.daemon, push_id, timeout, self.log_start)

    def assertOutcomes(self, status, expected):
        """Every device row is exactly as expected: {device_id: (state, reason, attempts)}."""
        got = {row["device_id"]: (row["state"], row["reason"], row["attempts"])
               for row in status["devices"]}
        self.assertEqual(len(got), len(status["devices"]), "a device listed twice")
        self.assertEqual(got, expected)
        counts = dict.fromkeys(STATES, 0)
        for state, _, _ in expected.values():
            counts[state] += 1
        self.assertEqual(status["counts"], counts)

    def assertApnsJwt(self, authorization, kid, pub, not_pub=None):
        """A bearer ES256 provider token with kid for TEAM that verifies with pub only."""
        self.assertTrue(authorization.startswith("bearer "), authorization)
        header, claims, sig, signed = jwt_decode(authorization[len("bearer "):])
        self.assertEqual(header, {"alg": "ES256", "kid": kid})
        self.assertEqual(set(claims), {"iss", "iat"})
        self.assertEqual(claims["iss"], TEAM)
        self.assertLessEqual(abs(claims["iat"] - time.time()), 60)
        self.assertEqual(len(sig), 64, "ES256 signatures are r||s, 64 bytes")
        self.assertTrue(openssl_verifies(pub, signed, raw_to_der(sig)),
                        "the provider token does not verify with %s" % pub)
        if not_pub is not None:
            self.assertFalse(openssl_verifies(not_pub, signed, raw_to_der(sig)),
                             "the provider token also verifies with %s" % not_pub)

    def apns_records(self, mock, token):
        return fixtures.apns_records(mock, token)

    def fcm_records(self, mock, token):
        return fixtures.fcm_records(mock, token)

    def wait_stats(self, mock, predicate, timeout=5.0):
        """The mock's stats once predicate(stats) holds (or the last ones after timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = mock.stats()
            if predicate(stats) or time.monotonic() > deadline:
                return stats
            time.sleep(0.02)


def fcm_body(token, body):
    """What src/provider/payload.c makes of {"body": body} for FCM."""
    return {"message": {"token": token, "notification": {"body": body},
                        "android": {"priority": "HIGH"},
                        "apns": {"headers": {"apns-priority": "10"}}}}


# ---- through an HTTP CONNECT proxy ------------------------------------------------------

class TestProxy(PathCase):

    def assertOnlyTunnelsTo(self, proxy, mock):
        """Every CONNECT named exactly the mock, and was tunnelled."""
        target = "127.0.0.1:%d" % mock.h2_port
        connects = proxy.connects()
        self.assertGreaterEqual(len(connects), 1, "the proxy saw no CONNECT")
        for c in connects:
            self.assertEqual(c["request_line"], "CONNECT %s HTTP/1.1" % target, c)
            self.assertEqual(c["target"], target)
            self.assertEqual(c["headers"].get("host"), target, c)
            self.assertTrue(c["tunnelled"], c)
        return connects

    def test_apns_sends_only_through_the_connect_proxy(self):
        mock = self.apns_mock()
        proxy = self.proxy()
        self.daemon_with(self.apns_section(mock, proxy=proxy.address, connections="1"))
        client = "px-" + uid()
        a = self.register("apns", client)
        accepted = self.push({"client_ids": [client]}, {"body": "through the proxy"}, 1)
        status = self.wait_finished(accepted["push_id"])
        self.assertOutcomes(status, {a["device_id"]: ("sent", None, 1)})

        [rec] = self.apns_records(mock, a["token"])
        self.assertEqual((rec["method"], rec["path"], rec["authority"], rec["status"]),
                         ("POST", "/3/device/" + a["token"],
                          "127.0.0.1:%d" % mock.h2_port, 200))
        self.assertEqual(json.loads(rec["body"]), {"aps": {"alert": {"body":
                                                                     "through the proxy"}}})
        self.assertEqual(rec["headers"]["apns-topic"], APP)
        self.assertApnsJwt(rec["headers"]["authorization"], KEY_ID, CERTS.apns_pub)
        connects = self.assertOnlyTunnelsTo(proxy, mock)
        self.assertEqual(len(connects), 1, connects)
        stats = self.wait_stats(mock, lambda s: s["connections_accepted"] >= proxy.tunnels())
        self.assertEqual(stats["connections_accepted"], proxy.tunnels(),
                         "a connection reached the mock without the proxy")

    def test_fcm_token_exchange_and_sends_go_through_the_connect_proxy(self):
        self.check_fcm_through_proxy({})

    def test_fcm_token_exchange_uses_the_configured_proxy_despite_no_proxy(self):
        # The configured proxy is used whatever the environment says, as the HTTP/2 sends
        # do: a no_proxy naming the target must not send libcurl's token exchange around it.
        self.check_fcm_through_proxy({"no_proxy": "127.0.0.1,localhost",
                                      "NO_PROXY": "127.0.0.1,localhost"})

    def check_fcm_through_proxy(self, env):
        mock = self.fcm_mock()
        proxy = self.proxy()
        clean = dict.fromkeys(PROXY_VARIABLES)
        clean.update(env)
        self.daemon_with(self.fcm_section(mock, proxy=proxy.address, connections="1"),
                         env=clean)
        client = "pxf-" + uid()
        f = self.register("fcm", client)
        accepted = self.push({"client_ids": [client]}, {"body": "via proxy"}, 1)
        status = self.wait_finished(accepted["push_id"])
        self.assertOutcomes(status, {f["device_id"]: ("sent", None, 1)})

        records = mock.requests()
        exchanges = [r for r in records if r["path"] == "/token"]
        self.assertEqual([(r["method"], r["status"]) for r in exchanges], [("POST", 200)])
        [rec] = self.fcm_records(mock, f["token"])
        self.assertEqual((rec["method"], rec["path"], rec["status"]),
                         ("POST", FCM_SEND_PATH, 200))
        self.assertEqual(json.loads(rec["body"]), fcm_body(f["token"], "via proxy"))
        self.assertRegex(rec["headers"]["authorization"], r"^Bearer ya29\.mock-[0-9a-f]{32}$")

        connects = self.assertOnlyTunnelsTo(proxy, mock)
        # libcurl names itself in its CONNECT; the HTTP/2 pool sends only Host.
        by_curl = [c for c in connects if "user-agent" in c["headers"]]
        by_pool = [c for c in connects if "user-agent" not in c["headers"]]
        self.assertEqual(len(by_curl), 1, "the token exchange bypassed the proxy: %s"
                         % connects)
        self.assertEqual(len(by_pool), 1, connects)
        self.assertTrue(by_curl[0]["headers"]["user-agent"].startswith("pushrelay/"),
                        by_curl[0])
        stats = self.wait_stats(mock, lambda s: s["connections_accepted"] >= proxy.tunnels())
        self.assertEqual(stats["connections_accepted"], proxy.tunnels(),
                         "a connection reached the mock without the proxy")

    def test_https_proxy_of_the_environment_is_used_without_a_configured_proxy(self):
        # No proxy option: the environment's https_proxy, with Basic credentials, carries
        # both providers' connections and the token exchange; http_proxy and all_proxy
        # mean nothing for https endpoints.
        apns = self.apns_mock()
        fcm = self.fcm_mock()
        proxy = self.proxy()
        refusing = self.proxy(refuse="403 Forbidden")
        env = dict.fromkeys(PROXY_VARIABLES)
        env.update({"https_proxy": "http://relay:s%%3Acr%%40t@%s" % proxy.address,
                    "http_proxy": "http://" + refusing.address,
                    "all_proxy": "http://" + refusing.address})
        self.daemon_with(self.apns_section(apns), self.fcm_section(fcm), env=env)
        client = "envproxy-" + uid()
        a = self.register("apns", client)
        f = self.register("fcm", client)
        accepted = self.push({"client_ids": [client]}, {"body": "via the environment"}, 2)
        self.assertOutcomes(self.wait_finished(accepted["push_id"]), {
            a["device_id"]: ("sent", None, 1), f["device_id"]: ("sent", None, 1)})
        self.assertEqual(refusing.connects(), [])
        connects = proxy.connects()
        self.assertEqual(sorted({c["target"] for c in connects}),
                         sorted({"127.0.0.1:%d" % apns.h2_port, "127.0.0.1:%d" % fcm.h2_port}))
        basic = "Basic " + base64.b64encode(b"relay:s:cr@t").decode()
        for c in connects:
            self.assertEqual(c["headers"].get("proxy-authorization"), basic, c)
        # The token exchange (libcurl names itself) went through it too.
        self.assertEqual(len([c for c in connects if "user-agent" in c["headers"]]), 1,
                         connects)
        for provider in ("apns", "fcm"):
            [line] = self.daemon.find_log(
                lambda x, p=provider: x.get("msg") == "%s proxy from the environment "
                "(https_proxy)" % p)
            self.assertEqual(line["proxy"], proxy.address)
        log = self.daemon.log_text()
        self.assertNotIn("cr@t", log)
        self.assertNotIn("s%3Acr%40t", log)

    def test_no_proxy_of_the_environment_sends_the_hosts_it_names_direct(self):
        apns = self.apns_mock()
        fcm = self.fcm_mock()
        refusing = self.proxy(refuse="403 Forbidden")
        env = dict.fromkeys(PROXY_VARIABLES)
        env.update({"HTTPS_PROXY": "http://" + refusing.address,
                    "no_proxy": "localhost, .example.com,127.0.0.1"})
        self.daemon_with(self.apns_section(apns), self.fcm_section(fcm), env=env)
        client = "noproxy-" + uid()
        a = self.register("apns", client)
        f = self.register("fcm", client)
        accepted = self.push({"client_ids": [client]}, {"body": "direct"}, 2)
        self.assertOutcomes(self.wait_finished(accepted["push_id"]), {
            a["device_id"]: ("sent", None, 1), f["device_id"]: ("sent", None, 1)})
        self.assertEqual(refusing.connects(), [])
        self.assertEqual(len(self.apns_records(apns, a["token"])), 1)
        self.assertEqual(len(self.fcm_records(fcm, f["token"])), 1)

    def test_apns_proxy_refusing_connect_fails_the_delivery_naming_the_proxy(self):
        mock = self.apns_mock()
        proxy = self.proxy(refuse="403 Forbidden")
        self.daemon_with(self.apns_section(mock, proxy=proxy.address,
                                           request_timeout="500ms"))
        client = "px403-" + uid()
        a = self.register("apns", client)
        accepted = self.push({"client_ids": [client]}, {"body": "blocked"}, 1)
        status = self.wait_finished(accepted["push_id"], timeout=20)
        [row] = status["devices"]
        self.assertEqual((row["state"], row["attempts"]), ("failed", MAX_ATTEMPTS), row)
        self.assertEqual(row["reason"], "gave up after %d attempts: proxy CONNECT failed: "
                         "proxy: HTTP/1.1 403 Forbidden" % MAX_ATTEMPTS)

        lines = self.daemon.find_log(lambda x: x.get("msg") == "h2 connect failed")
        self.assertGreaterEqual(len(lines), 1, self.daemon.log_text())
        for line in lines:
            self.assertEqual((line["level"], line["endpoint"], line["error"], line["reason"]),
                             ("warn", "127.0.0.1:%d via %s" % (mock.h2_port, proxy.address),
                              "proxy CONNECT failed", "proxy: HTTP/1.1 403 Forbidden"), line)
        connects = proxy.connects()
        self.assertGreaterEqual(len(connects), 1)
        for c in connects:
            self.assertEqual((c["target"], c["tunnelled"]),
                             ("127.0.0.1:%d" % mock.h2_port, False))
        self.assertEqual(mock.requests(), [])
        self.assertEqual(mock.stats()["connections_accepted"], 0)

    def test_fcm_proxy_refusing_connect_fails_the_delivery_naming_the_proxy(self):
        mock = self.fcm_mock()
        proxy = self.proxy(refuse="403 Forbidden")
        self.daemon_with(self.fcm_section(mock, proxy=proxy.address,
                                          request_timeout="500ms"))
        client = "pxf403-" + uid()
        f = self.register("fcm", client)
        accepted = self.push({"client_ids": [client]}, {"body": "blocked"}, 1)
        status = self.wait_finished(accepted["push_id"], timeout=20)
        [row] = status["devices"]
        self.assertEqual((row["state"], row["attempts"]), ("failed", MAX_ATTEMPTS), row)
        # Sends wait for an access token, which libcurl cannot fetch through the proxy.
        refused = "transfer failed: CONNECT tunnel failed, response 403"
        self.assertEqual(row["reason"], "gave up after %d attempts: oauth: %s"
                         % (MAX_ATTEMPTS, refused))
        lines = self.daemon.find_log(
            lambda x: x.get("msg") == "fcm access token exchange failed")
        self.assertGreaterEqual(len(lines), 1, self.daemon.log_text())
        for line in lines:
            self.assertEqual((line["level"], line["app_id"], line["token_uri"], line["status"],
                              line["error"]),
                             ("error", PROJECT, mock.url("/token"), "0", refused), line)
        self.assertEqual(mock.requests(), [])
        self.assertEqual(mock.stats()["connections_accepted"], 0)
        for c in proxy.connects():
            self.assertEqual((c["target"], c["tunnelled"]),
                             ("127.0.0.1:%d" % mock.h2_port, False))


# ---- the APNs stream limit -------------------------------------------------------------

class TestStreamLimit(PathCase):

    def test_300_pushes_on_one_connection_stay_within_the_raised_stream_limit(self):
        # One stream until a request passes token auth, then SETTINGS raise it to 8.
        mock = self.apns_mock("--token-auth-initial-streams", "1", "--max-streams", "8")
        # Slow answers keep streams open, so the limit is what bounds them.
        mock.add_rule(delay_ms=40)
        self.daemon_with(self.apns_section(mock, connections="1"))
        u = uid()
        client = "many-" + u
        devices = [self.register("apns", client, device_id="sl-%s-%03d" % (u, i))
                   for i in range(300)]
        accepted = self.push({"client_ids": [client]}, {"body": "fan out"}, 300)
        status = self.wait_finished(accepted["push_id"], timeout=30)
        self.assertOutcomes(status, {d["device_id"]: ("sent", None, 1) for d in devices})

        records = mock.requests()
        self.assertEqual(sorted(r["path"] for r in records),
                         sorted("/3/device/" + d["token"] for d in devices))
        self.assertEqual({r["status"] for r in records}, {200})
        stats = mock.stats()
        self.assertEqual(stats["connections_accepted"], 1, stats)
        self.assertEqual(stats["max_concurrent_streams"], 8, stats)
        self.assertLessEqual(stats["max_concurrent_streams_observed"], 8, stats)
        # The raised limit was used, not only the initial one.
        self.assertEqual(stats["max_concurrent_streams_observed"], 8, stats)
        self.assertEqual((stats["responses"], stats["rst_streams"], stats["goaways"]),
                         ({"200": 300}, 0, 0), stats)


# ---- APNs certificate auth -------------------------------------------------------------

class TestCertificateAuth(PathCase):

    def make_client_certificate(self):
        """A test CA and an APNs-style client certificate it signs: (ca, cert, key, der)."""
        d = tempfile.mkdtemp(prefix="client-cert-", dir=_TMP)
        ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
        key, csr = os.path.join(d, "client.key"), os.path.join(d, "client.csr")
        cert, ext = os.path.join(d, "client.pem"), os.path.join(d, "client.ext")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", ca_key)
        openssl("req", "-x509", "-new", "-key", ca_key, "-sha256", "-days", "2", "-subj",
                "/CN=pushrelay test client CA", "-addext",
                "basicConstraints=critical,CA:TRUE", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign", "-out", ca)
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", key)
        openssl("req", "-new", "-key", key, "-subj",
                "/UID=%s/CN=Apple Push Services: %s/O=pushrelay tests" % (APP, APP),
                "-out", csr)
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-sha256", "-days", "2", "-extfile", ext, "-out", cert)
        der = openssl("x509", "-in", cert, "-outform", "DER")
        return ca, cert, key, der

    def test_certificate_auth_sends_without_a_provider_token_and_presents_the_certificate(self):
        ca, cert, key, der = self.make_client_certificate()
        # mock_apns has no client-certificate check (its TLS server never asks for one),
        # so the sandbox URL points at a TLS server here that requires and records it.
        mock = self.start_mock("apns", "--topic", APP)
        checker = ClientCertServer(ca)
        self.addCleanup(checker.stop)
        section = self.apns_section(mock, auth="certificate", certificate_file=cert,
                                    certificate_key_file=key,
                                    sandbox_url="https://127.0.0.1:%d" % checker.port)
        for option in ("key_file", "key_id", "team_id"):
            del section['apns "%s"' % APP][option]
        self.daemon_with(section)
        [ready] = self.daemon.find_log(lambda x: x.get("msg") == "apns app ready")
        self.assertEqual((ready["app"], ready["auth"], ready["key_id"]),
                         (APP, "certificate", "-"))

        client = "cert-" + uid()
        a = self.register("apns", client)
        accepted = self.push({"device_ids": [a["device_id"]]}, {"body": "by certificate"}, 1)
        status = self.wait_finished(accepted["push_id"])
        self.assertOutcomes(status, {a["device_id"]: ("sent", None, 1)})
        [rec] = self.apns_records(mock, a["token"])
        headers = dict(rec["headers"])
        headers.pop("content-length", None)
        self.assertEqual(headers, {"apns-topic": APP, "apns-push-type": "alert",
                                   "apns-priority": "10", "apns-id": headers.get("apns-id")})
        self.assertRegex(headers["apns-id"], UUID4_RE)
        self.assertEqual(json.loads(rec["body"]), {"aps": {"alert": {"body":
                                                                     "by certificate"}}})

        # A sandbox device: the handshake with the checking server shows the certificate.
        s = self.register("apns", client, environment="sandbox")
        self.push({"device_ids": [s["device_id"]]}, {"body": "show it"}, 1)
        handshakes = checker.wait_for_handshake()
        self.assertGreaterEqual(len(handshakes), 1, "no TLS handshake reached the checker")
        self.assertEqual(handshakes[0], {"der": der, "alpn": "h2"})


# ---- reloading credentials -------------------------------------------------------------

class TestReload(PathCase):

    def test_sighup_with_a_new_p8_key_signs_the_next_push_with_the_new_key(self):
        new_key, new_pub = tmp_path("new.p8"), tmp_path("new.pub.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", new_key)
        openssl("pkey", "-in", new_key, "-pubout", "-out", new_pub)
        old_mock = self.apns_mock()
        port = old_mock.h2_port
        daemon = self.daemon_with(self.apns_section(old_mock))
        client = "rot-" + uid()
        a = self.register("apns", client)
        first = self.push({"device_ids": [a["device_id"]]}, {"body": "old key"}, 1)
        self.assertOutcomes(self.wait_finished(first["push_id"]),
                            {a["device_id"]: ("sent", None, 1)})
        [rec] = self.apns_records(old_mock, a["token"])
        self.assertApnsJwt(rec["headers"]["authorization"], KEY_ID, CERTS.apns_pub, new_pub)

        offset = daemon.log_offset()
        outcome = daemon.reload(daemon.config_text({'apns "%s"' % APP: {
            "key_file": new_key, "key_id": NEW_KEY_ID}}))
        self.assertEqual(outcome["msg"], "configuration reloaded", outcome)
        renewed = daemon.wait_for_log(lambda x: x.get("msg") == "apns provider token renewed",
                                      since=offset)
        self.assertEqual((renewed["app"], renewed["key_id"], renewed["why"]),
                         (APP, NEW_KEY_ID, "reload"))

        # APNs now knows the new key only: a mock on the same port that checks it.
        offset = daemon.log_offset()
        self.assertEqual(old_mock.stop(), 0)
        daemon.wait_for_log(lambda x: x.get("msg") in ("h2 connection closed",
                                                       "h2 connection lost"), since=offset)
        new_mock = self.start_mock("apns", "--listen", "127.0.0.1:%d" % port, "--team-id",
                                   TEAM, "--key-id", NEW_KEY_ID, "--auth-key", new_pub,
                                   "--topic", APP)
        self.assertEqual(new_mock.h2_port, port)
        second = self.push({"device_ids": [a["device_id"]]}, {"body": "new key"}, 1)
        self.assertOutcomes(self.wait_finished(second["push_id"]),
                            {a["device_id"]: ("sent", None, 1)})
        [rec] = self.apns_records(new_mock, a["token"])
        self.assertEqual(rec["status"], 200)
        self.assertApnsJwt(rec["headers"]["authorization"], NEW_KEY_ID, new_pub,
                           CERTS.apns_pub)
        self.assertFalse(daemon.secret_in_log(rec["headers"]["authorization"][7:]))

    def test_sighup_with_an_unparsable_service_account_is_refused_and_fcm_keeps_working(self):
        mock = self.fcm_mock()
        account = fixtures.fcm_account(CERTS, tmp_path("sa.json"), mock.url("/token"))
        with open(account) as f:
            good = f.read()
        daemon = self.daemon_with(self.fcm_section(mock, account))
        client = "sa-" + uid()
        f1 = self.register("fcm", client)
        first = self.push({"device_ids": [f1["device_id"]]}, {"body": "before"}, 1)
        self.assertOutcomes(self.wait_finished(first["push_id"]),
                            {f1["device_id"]: ("sent", None, 1)})
        [rec] = self.fcm_records(mock, f1["token"])
        access = rec["headers"]["authorization"]

        broken_key = json.loads(good)
        key_line = broken_key["private_key"].split("\n")[1]      # base64 of the real key
        broken_key["private_key"] = ("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n"
                                     "-----END PRIVATE KEY-----\n")
        cases = [("truncated JSON", good[:len(good) // 2],
                  'fcm "%s": service account %s: not a JSON object' % (PROJECT, account)),
                 ("private_key not a key", json.dumps(broken_key),
                  'fcm "%s": ' % PROJECT)]
        for what, text, error in cases:
            with self.subTest(what):
                with open(account, "w") as f:
                    f.write(text)
                outcome = daemon.reload()
                self.assertEqual((outcome["msg"], outcome["level"]),
                                 ("reload refused", "error"), outcome)
                self.assertTrue(outcome["error"].startswith(error), outcome)
                self.assertFalse(daemon.secret_in_log(key_line), "the key is in the log")

        # The old access token still sends.
        f2 = self.register("fcm", client)
        second = self.push({"device_ids": [f2["device_id"]]}, {"body": "after"}, 1)
        self.assertOutcomes(self.wait_finished(second["push_id"]),
                            {f2["device_id"]: ("sent", None, 1)})
        [rec] = self.fcm_records(mock, f2["token"])
        self.assertEqual(rec["headers"]["authorization"], access)
        self.assertEqual(json.loads(rec["body"]), fcm_body(f2["token"], "after"))

        # And the old service account still gets new access tokens: FCM drops ours (a 401
        # without an FcmError), the daemon exchanges its old assertion key for a new one.
        f3 = self.register("fcm", client)
        mock.add_rule(token=f3["token"], status=401, error_code="", times=1)
        third = self.push({"device_ids": [f3["device_id"]]}, {"body": "renewed"}, 1)
        self.assertOutcomes(self.wait_finished(third["push_id"]),
                            {f3["device_id"]: ("sent", None, 2)})
        recs = self.fcm_records(mock, f3["token"])
        self.assertEqual([r["status"] for r in recs], [401, 200])
        self.assertEqual(recs[0]["headers"]["authorization"], access)
        self.assertNotEqual(recs[1]["headers"]["authorization"], access)
        exchanges = [r for r in mock.requests() if r["path"] == "/token"]
        self.assertEqual([r["status"] for r in exchanges], [200, 200])


# ---- certs.example/ -----------------------------------------------------------------------

EXAMPLE_DIR = os.path.join(os.environ.get("PUSHRELAY_TOP_SRCDIR")
                           or os.path.dirname(os.path.dirname(os.path.dirname(
                               os.path.abspath(__file__)))), "certs.example")
INSTALL_DIR = "/etc/pushrelay/"


def example_config_text():
    """certs.example/pushrelay.conf.sample with its /etc/pushrelay/ paths in the source."""
    with open(os.path.join(EXAMPLE_DIR, "pushrelay.conf.sample")) as f:
        return f.read().replace(INSTALL_DIR, EXAMPLE_DIR + "/")


def example_sections():
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#", ";"))
    parser.read_string(example_config_text())
    return {name: dict(parser[name]) for name in parser.sections()}


class TestCertsExample(PathCase):

    def test_sample_config_is_valid_with_paths_in_the_source_tree(self):
        with open(os.path.join(EXAMPLE_DIR, "pushrelay.conf.sample")) as f:
            sample = f.read()
        settings = "\n".join(ln for ln in sample.split("\n") if not ln.startswith("#"))
        named = sorted(set(re.findall(re.escape(INSTALL_DIR) + r"(\S+)", settings)))
        self.assertEqual(named, ["AuthKey_FAKE123456.p8", "service-account.example.json"])
        path = tmp_path("pushrelay.conf")
        with open(path, "w") as f:
            f.write(example_config_text())
        code, out, err = harness.run_pushrelayd(["-t", "-c", path])
        # -t loads the credentials: the sample's files, world-readable in the source
        # tree, are warned about (the daemon's own check), and nothing else is said.
        lines = err.splitlines()
        self.assertEqual((code, out, lines[-1]),
                         (0, "", "pushrelayd: configuration %s is valid" % path))
        files = {os.path.join(EXAMPLE_DIR, name) for name in named}
        for line in lines[:-1]:
            fields = harness.parse_log_line(line)
            self.assertTrue(fields["msg"].endswith("is readable by group or others"), line)
            self.assertIn(fields["path"], files, line)

    def test_sample_credentials_load_and_authenticate_against_the_mocks(self):
        sections = example_sections()
        [apns_name] = [s for s in sections if s.startswith("apns ")]
        [fcm_name] = [s for s in sections if s.startswith("fcm ")]
        apns, fcm = sections[apns_name], sections[fcm_name]
        app = apns_name.split('"')[1]
        fcm_app = fcm_name.split('"')[1]
        self.assertEqual((apns.get("auth", "token"), apns["key_id"]), ("token", "FAKE123456"))
        apns_pub = tmp_path("fake-apns.pub.pem")
        openssl("pkey", "-in", apns["key_file"], "-pubout", "-out", apns_pub)
        with open(fcm["service_account_file"]) as f:
            account = json.load(f)
        self.assertEqual(account["token_uri"], "https://oauth2.googleapis.com/token")
        fcm_key, fcm_pub = tmp_path("fake-sa.key"), tmp_path("fake-sa.pub.pem")
        with open(fcm_key, "w") as f:
            f.write(account["private_key"])
        openssl("pkey", "-in", fcm_key, "-pubout", "-out", fcm_pub)

        apns_mock = self.start_mock("apns", "--team-id", apns["team_id"], "--key-id",
                                    apns["key_id"], "--auth-key", apns_pub, "--topic",
                                    apns.get("topic", app))
        fcm_mock = self.start_mock("fcm", "--project-id", account["project_id"],
                                   "--service-account-key", fcm_pub, "--client-email",
                                   account["client_email"])
        # The same files, but nothing may leave loopback: the token exchange goes to the
        # mock, and so do the sends.
        account["token_uri"] = fcm_mock.url("/token")
        local_account = tmp_path("service-account.json")
        with open(local_account, "w") as f:
            json.dump(account, f)
        text = example_config_text().replace(fcm["service_account_file"], local_account)
        text = text.replace("[%s]\n" % apns_name, "[%s]\nproduction_url = %s\nsandbox_url = "
                            "%s\nca_file = %s\n" % (apns_name, apns_mock.url("").rstrip("/"),
                                                    apns_mock.url("").rstrip("/"), CERTS.ca))
        text = text.replace("[%s]\n" % fcm_name, "[%s]\nurl = %s\nca_file = %s\n"
                            % (fcm_name, fcm_mock.url("").rstrip("/"), CERTS.ca))
        text += "\n[server]\nstate_dir = {state}\n\n[api]\nlisten = 127.0.0.1:0\n"
        daemon = harness.Daemon(config_text="")
        self.addCleanup(daemon.cleanup)
        daemon.write_config(text.replace("{state}", daemon.state_dir))
        daemon.start()
        self.daemon = daemon

        client = "sample-" + uid()
        a = self.register("apns", client, app_id=app)
        f = self.register("fcm", client, app_id=fcm_app)
        accepted = self.push({"client_ids": [client]}, {"body": "sample keys"}, 2)
        self.assertOutcomes(self.wait_finished(accepted["push_id"]), {
            a["device_id"]: ("sent", None, 1), f["device_id"]: ("sent", None, 1)})
        self.assertEqual([r["status"] for r in apns_mock.requests()], [200])
        self.assertEqual([(r["path"], r["status"]) for r in fcm_mock.requests()],
                         [("/token", 200), ("/v1/projects/%s/messages:send"
                                            % account["project_id"], 200)])


if __name__ == "__main__":
    harness.main()
