"""pushrelayd as a process: command line, config check, key file, signals, health, sockets."""

import hashlib
import json
import os
import re
import resource
import signal
import socket
import stat
import subprocess
import time

import harness
import mockctl
from harness import DaemonTestCase, apns_device, run_pushrelayd


class CommandLineTest(DaemonTestCase):

    def test_version_prints_name_and_version_and_exits_0(self):
        code, out, err = run_pushrelayd(["--version"])
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines()[0], "pushrelayd 0.1.0")

    def test_help_lists_every_option_and_exits_0(self):
        code, out, err = run_pushrelayd(["--help"])
        self.assertEqual(code, 0, err)
        for option in ("-c", "-t", "--version", "--help"):
            self.assertRegex(out, r"(^|[\s\[,])%s\b" % re.escape(option),
                             "option %s not in usage:\n%s" % (option, out))

    def test_unknown_option_exits_2_with_usage_on_stderr(self):
        code, out, err = run_pushrelayd(["--no-such-option"])
        self.assertEqual(code, 2)
        self.assertIn("usage", err.lower())
        self.assertEqual(out, "")

    def test_unknown_short_option_exits_2(self):
        code, out, err = run_pushrelayd(["-Z"])
        self.assertEqual(code, 2)
        self.assertIn("usage", err.lower())


class CredentialCheckTest(DaemonTestCase):
    """pushrelayd -t loads every credential offline, and names each problem with the
    line of its section; the daemon refuses to start on the same problems."""

    @classmethod
    def setUpClass(cls):
        cls.certs, cls.tmp = mockctl.module_certs("pushrelay-credentials-")

    def put(self, d, name, data):
        path = os.path.join(d.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    def broken_config(self, d):
        """Three sections, each with one problem: (config text, their header lines)."""
        not_a_key = self.put(d, "AuthKey_BROKEN0000.p8", b"-----BEGIN PRIVATE KEY-----\n"
                             b"bm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        account = self.put(d, "service-account.json",
                           json.dumps({"type": "service_account",
                                       "project_id": "example"}).encode())
        text = "\n".join([
            "# one problem in each section",
            '[apns "com.example.ids"]',
            "key_file = %s" % self.certs.apns_key,
            "key_id = abc123",
            "team_id = TEAM123456",
            "",
            '[apns "com.example.key"]',
            "key_file = %s" % not_a_key,
            "key_id = ABC123DEFG",
            "team_id = TEAM123456",
            "",
            '[fcm "example"]',
            "service_account_file = %s" % account,
            ""])
        return text, (2, 7, 12)

    def test_t_names_every_credential_problem_with_its_sections_line(self):
        d = self.new_daemon()
        text, (ids, key, fcm) = self.broken_config(d)
        d.write_config(text)
        code, out, err = run_pushrelayd(["-t", "-c", d.config_path])
        self.assertEqual(code, 1, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 3, err)
        self.assertEqual(lines[0], 'pushrelayd: %s:%d: [apns "com.example.ids"] key_id "abc123": '
                         "must be the 10 upper-case letters and digits of the key's id "
                         "(from its AuthKey_KEYID.p8 name)" % (d.config_path, ids))
        self.assertTrue(lines[1].startswith('pushrelayd: %s:%d: [apns "com.example.key"] '
                                            % (d.config_path, key)), lines[1])
        self.assertIn("AuthKey_BROKEN0000.p8", lines[1])
        self.assertEqual(lines[2], 'pushrelayd: %s:%d: fcm "example": service account %s: '
                         "client_email is missing"
                         % (d.config_path, fcm, os.path.join(d.tmp, "service-account.json")))
        # Nothing of the key's text is shown.
        self.assertNotIn("bm90IGEga2V5", err)

    def test_t_passes_good_credentials_without_connecting(self):
        d = self.new_daemon()
        # The endpoints are nowhere: -t must not try them.
        d.write_config("\n".join([
            '[apns "com.example.ok"]', "key_file = %s" % self.certs.apns_key,
            "key_id = ABC123DEFG", "team_id = TEAM123456",
            "production_url = https://192.0.2.1", "sandbox_url = https://192.0.2.1", ""]))
        started = time.monotonic()
        code, out, err = run_pushrelayd(["-t", "-c", d.config_path])
        self.assertEqual(code, 0, err)
        self.assertIn("is valid", err)
        self.assertLess(time.monotonic() - started, 5)

    def test_daemon_refuses_to_start_on_the_same_problems(self):
        d = self.new_daemon()
        text, (ids, key, fcm) = self.broken_config(d)
        d.write_config(text + "[api]\nlisten = 127.0.0.1:0\n[server]\nstate_dir = %s\n"
                       % os.path.join(d.tmp, "state"))
        d.start(wait=False)
        self.assertEqual(d.wait_exit(10), 1)
        refused = d.find_log(lambda f: f.get("msg") == "credentials refused")
        self.assertEqual([(f["file"], f["line"]) for f in refused],
                         [(d.config_path, str(line)) for line in (ids, key, fcm)], d.log_text())
        self.assertTrue(refused[0]["error"].startswith('[apns "com.example.ids"] key_id'))
        [cannot] = d.find_log(lambda f: f.get("msg") == "cannot start")
        self.assertTrue(cannot["error"].startswith("%s:%d: " % (d.config_path, ids)),
                        cannot["error"])


class AccessLogTest(DaemonTestCase):
    """One line per API request at info: method, route template, status, duration,
    bytes, the key's id; never the key, nor the ids of the path. Refused keys are logged
    with the peer, ten a minute at most."""

    def test_each_request_has_a_line_with_the_keys_id_and_the_route_not_the_path(self):
        d = self.start_daemon()
        offset = d.log_offset()
        status, headers, _, raw = d.request("PUT", "/v1/devices/secret-device-7",
                                            apns_device("alice"))
        self.assertEqual(status, 201, raw)
        line = d.wait_for_log(lambda f: f.get("msg") == "api request" and
                              f.get("method") == "PUT", since=offset)
        key_id = "k-" + hashlib.sha256(d.key.encode()).hexdigest()[:8]
        self.assertEqual((line["route"], line["status"], line["bytes"], line["key"]),
                         ("/v1/devices/{device_id}", "201", str(len(raw)), key_id))
        self.assertGreaterEqual(int(line["duration_ms"]), 0)
        self.assertEqual(line["level"], "info")
        self.assertNotIn("secret-device-7", line["_line"])
        self.assertFalse(d.secret_in_log(d.key))
        # A public route: no key.
        self.assertEqual(d.request("GET", "/healthz", key=None)[0], 200)
        line = d.wait_for_log(lambda f: f.get("msg") == "api request" and
                              f.get("route") == "/healthz", since=offset)
        self.assertEqual((line["status"], line["key"]), ("200", "-"))

    def test_refused_keys_are_logged_with_the_peer_ten_a_minute(self):
        d = self.start_daemon()
        offset = d.log_offset()
        wrong = "w" * 40
        for _ in range(15):
            status = d.request("GET", "/v1/devices/x", key=wrong)[0]
            self.assertEqual(status, 401)
        d.wait_for_log(lambda f: f.get("msg") == "api request" and f.get("status") == "401"
                       and f.get("key") == "-", since=offset)
        refused = d.find_log(lambda f: f.get("msg") == "api key refused", since=offset)
        self.assertEqual(len(refused), 10)
        self.assertEqual((refused[0]["peer"], refused[0]["level"], refused[0]["route"]),
                         ("127.0.0.1", "warn", "/v1/devices/{device_id}"))
        self.assertFalse(d.secret_in_log(wrong))

    def test_access_log_off_leaves_only_refusals(self):
        d = self.start_daemon({"api": {"access_log": "no"}})
        offset = d.log_offset()
        self.assertEqual(d.request("PUT", "/v1/devices/d1", apns_device("a"))[0], 201)
        self.assertEqual(d.request("GET", "/v1/devices/d1", key="w" * 40)[0], 401)
        d.wait_for_log(lambda f: f.get("msg") == "api key refused", since=offset)
        self.assertEqual(d.find_log(lambda f: f.get("msg") == "api request", since=offset),
                         [])


class ConfigCheckTest(DaemonTestCase):
    """pushrelayd -t -c FILE."""

    def check(self, text):
        d = self.new_daemon()
        path = d.config_path
        d.write_config(text.replace("TMP", d.tmp))
        code, out, err = run_pushrelayd(["-t", "-c", path])
        return d, path, code, out, err

    def test_valid_file_with_every_option_exits_0(self):
        text = "\n".join([
            "# every option, at a valid value",
            "[server]",
            "state_dir = TMP/state",
            "shutdown_timeout = 10s",
            "",
            "[api]",
            "listen = 127.0.0.1:0 [::1]:0",
            "unix_socket = TMP/api.sock",
            "unix_socket_mode = 0660",
            "api_key_file = TMP/api-keys",
            "max_body_size = 1M",
            "request_timeout = 30s",
            "",
            "; a comment",
            "[store]",
            "backend = sqlite",
            "path = TMP/state/pushrelay.db",
            "synchronous = normal",
            "busy_timeout = 5s",
            "",
            "[log]",
            "level = debug",
            "format = json",
            "",
        ])
        d, path, code, out, err = self.check(text)
        self.assertEqual(code, 0, err)
        self.assertIn("valid", err)
        self.assertIn(path, err)

    def test_empty_file_is_valid(self):
        d, path, code, out, err = self.check("")
        self.assertEqual(code, 0, err)

    def assertRejected(self, text, line, *words):
        d, path, code, out, err = self.check(text)
        self.assertNotEqual(code, 0, "accepted:\n" + text)
        self.assertIn("%s:%d:" % (path, line), err)
        for w in words:
            self.assertIn(w, err)

    def test_unknown_section_names_file_line_and_section(self):
        text = "[server]\nshutdown_timeout = 5s\n[bogus]\nthing = 1\n"
        d, path, code, out, err = self.check(text)
        self.assertNotEqual(code, 0)
        self.assertRegex(err, re.escape(path) + r":[34]:")
        self.assertIn("bogus", err)

    def test_unknown_key_names_file_line_and_key(self):
        text = "[server]\nshutdown_timeout = 5s\n\n[api]\n# the port\n\nlisen = 127.0.0.1:0\n"
        self.assertRejected(text, 7, "unknown key 'lisen' in [api]")

    def test_out_of_range_value_names_file_line_and_key(self):
        self.assertRejected("[log]\nlevel = info\n[api]\nmax_body_size = 0\n", 4,
                            "max_body_size", "must be between 1K and 64M")

    def test_out_of_range_timeout_names_file_line_and_key(self):
        self.assertRejected("[server]\nshutdown_timeout = 11m\n", 2, "shutdown_timeout",
                            "must be between")

    def test_bad_log_level_names_file_line_and_choices(self):
        self.assertRejected("[log]\nlevel = verbose\n", 2, "[log] level",
                            "must be one of: error, warn, info, debug")

    def test_bad_synchronous_names_file_line_and_choices(self):
        self.assertRejected("[store]\nbackend = sqlite\nsynchronous = off\n", 3,
                            "[store] synchronous", "must be one of: full, normal")

    def test_bad_log_format_names_file_line_and_choices(self):
        self.assertRejected("[log]\n\nformat = xml\n", 3, "[log] format",
                            "must be one of: text, json")

    def test_key_set_twice_names_second_line(self):
        self.assertRejected("[log]\nlevel = info\nlevel = debug\n", 3, "level")

    def test_missing_file_fails_naming_it(self):
        d = self.new_daemon()
        path = os.path.join(d.tmp, "absent.conf")
        code, out, err = run_pushrelayd(["-t", "-c", path])
        self.assertNotEqual(code, 0)
        self.assertIn(path, err)

    def test_daemon_refuses_to_start_with_bad_config(self):
        d = self.new_daemon(config_text="[api]\nlisen = 127.0.0.1:0\n")
        d.start(wait=False)
        code = d.wait_exit(10)
        self.assertNotEqual(code, 0)
        self.assertIn("%s:2:" % d.config_path, d.log_text())


class KeyFileTest(DaemonTestCase):

    def test_first_start_generates_0600_key_file_and_never_logs_the_key(self):
        d = self.start_daemon()
        st = os.stat(d.key_path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        keys = d.read_keys()
        self.assertEqual(len(keys), 1)
        self.assertGreaterEqual(len(keys[0]), 32)
        self.assertRegex(keys[0], r"^[\x21-\x7e]+$")
        self.assertIn(d.key_path, d.log_text(), "the log does not name the key file")
        self.assertFalse(d.secret_in_log(keys[0]), "the API key is in the log")
        status, _, body, _ = d.request("GET", "/v1/clients/alice/devices")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"client_id": "alice", "devices": []})

    def test_second_start_reuses_the_generated_key(self):
        d = self.start_daemon()
        with open(d.key_path, "rb") as f:
            first = f.read()
        key = d.key
        self.assertEqual(d.stop(), 0)
        d.start()
        with open(d.key_path, "rb") as f:
            self.assertEqual(f.read(), first)
        self.assertEqual(d.key, key)
        status, _, _, _ = d.request("GET", "/v1/clients/alice/devices", key=key)
        self.assertEqual(status, 200)
        self.assertFalse(d.secret_in_log(key))

    def test_configured_key_file_with_several_keys_accepts_each(self):
        keys = ["k1-" + "a" * 40, "k2-" + "b" * 40]
        d = self.start_daemon(keys=keys)
        for k in keys:
            status, _, _, _ = d.request("GET", "/v1/clients/alice/devices", key=k)
            self.assertEqual(status, 200, k)
        status, _, _, _ = d.request("GET", "/v1/clients/alice/devices", key="k3-" + "c" * 40)
        self.assertEqual(status, 401)
        # A comment line is not a key.
        status, _, _, _ = d.request("GET", "/v1/clients/alice/devices",
                                    key="# API keys, one per line")
        self.assertEqual(status, 401)
        for k in keys:
            self.assertFalse(d.secret_in_log(k))


class CredentialFileModeTest(DaemonTestCase):
    """Every file holding a secret is warned about, by path, when others can read it."""

    WARNINGS = ("API key file", "APNs key_file", "APNs pkcs12_file",
                "APNs pkcs12_password_file", "APNs certificate_key_file",
                "FCM service_account_file", "Redis password_file")

    @classmethod
    def setUpClass(cls):
        cls.certs, cls.tmp = mockctl.module_certs("pushrelay-daemon-")

    def credentials(self, mode):
        """Copies of each kind of credential file with this mode, and a config using them."""
        d = os.path.join(self.tmp, "mode-%o-%s" % (mode, os.urandom(4).hex()))
        os.mkdir(d)
        paths = {}

        def put(name, data):
            path = os.path.join(d, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, mode)
            return path

        with open(self.certs.apns_key, "rb") as f:
            paths["APNs key_file"] = put("AuthKey.p8", f.read())
        p12 = os.path.join(d, "apns.p12.tmp")
        subprocess.run(["openssl", "pkcs12", "-export", "-in", self.certs.server_cert,
                        "-inkey", self.certs.server_key, "-passout", "pass:p12-secret",
                        "-out", p12], check=True, capture_output=True)
        with open(p12, "rb") as f:
            paths["APNs pkcs12_file"] = put("apns.p12", f.read())
        os.unlink(p12)
        paths["APNs pkcs12_password_file"] = put("p12-password", b"p12-secret\n")
        with open(self.certs.server_key, "rb") as f:
            paths["APNs certificate_key_file"] = put("apns-cert.key", f.read())
        account = mockctl.write_service_account(os.path.join(d, "sa.tmp"), self.certs,
                                                "relay@example.iam.gserviceaccount.com",
                                                "https://127.0.0.1:9/token", "example")
        with open(account, "rb") as f:
            paths["FCM service_account_file"] = put("service-account.json", f.read())
        os.unlink(account)
        paths["Redis password_file"] = put("redis-password", b"redis-secret\n")
        nowhere = "https://127.0.0.1:9"
        common = {"production_url": nowhere, "sandbox_url": nowhere, "ca_file": self.certs.ca}
        config = {
            'apns "com.example.token"': dict(common, key_file=paths["APNs key_file"],
                                             key_id="ABC123DEFG", team_id="TEAM123456"),
            'apns "com.example.p12"': dict(
                common, auth="certificate", pkcs12_file=paths["APNs pkcs12_file"],
                pkcs12_password_file=paths["APNs pkcs12_password_file"]),
            'apns "com.example.pem"': dict(
                common, auth="certificate", certificate_file=self.certs.server_cert,
                certificate_key_file=paths["APNs certificate_key_file"]),
            'fcm "example"': {"service_account_file": paths["FCM service_account_file"],
                              "url": nowhere, "ca_file": self.certs.ca},
            "redis": {"address": "127.0.0.1:9", "password_file": paths["Redis password_file"]},
            "pubsub": {"enabled": "yes"},
        }
        return config, paths

    def start_with(self, mode):
        config, paths = self.credentials(mode)
        d = self.new_daemon(config=config, keys=["mode-test-" + "k" * 32])
        os.chmod(d.key_path, mode)
        paths["API key file"] = d.key_path
        d.start()
        return d, paths

    def warnings(self, d):
        return sorted((f["msg"], f.get("path")) for f in d.find_log(
            lambda f: f.get("msg", "").endswith(" is readable by group or others")))

    def test_group_or_world_readable_credentials_are_each_warned_about(self):
        for mode in (0o644, 0o640, 0o604):
            with self.subTest(mode="%o" % mode):
                d, paths = self.start_with(mode)
                want = sorted(("%s is readable by group or others" % what, paths[what])
                              for what in self.WARNINGS)
                self.assertEqual(sorted(set(self.warnings(d))), want, d.log_text())
                for line in d.find_log(lambda f: f.get("msg", "").endswith(
                        " is readable by group or others")):
                    self.assertEqual(line["level"], "warn")
                for secret in ("p12-secret", "redis-secret"):
                    self.assertFalse(d.secret_in_log(secret))

    def test_owner_only_credentials_are_not_warned_about(self):
        for mode in (0o600, 0o400):
            with self.subTest(mode="%o" % mode):
                d, _ = self.start_with(mode)
                self.assertEqual(self.warnings(d), [], d.log_text())


class SignalTest(DaemonTestCase):

    def populate(self, d, n=5):
        tokens = []
        for i in range(n):
            body = apns_device("alice")
            status, _, _, raw = d.request("PUT", "/v1/devices/dev-%d" % i, body)
            self.assertEqual(status, 201, raw)
            tokens.append(body["token"])
        status, _, _, raw = d.request("PUT", "/v1/rooms/r1/members/alice")
        self.assertEqual(status, 201, raw)
        return tokens

    def assertStoppedCleanly(self, d, sig, tokens):
        offset = d.log_offset()
        t0 = time.monotonic()
        code = d.stop(sig, timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(code, 0, d.log_text(offset))
        self.assertLess(took, 10.0)
        self.assertTrue(d.find_log(lambda f: f.get("msg") == "stopped", since=offset),
                        "no msg=stopped:\n" + d.log_text(offset))
        wal = d.db_path + "-wal"
        if os.path.exists(wal):
            self.assertEqual(os.path.getsize(wal), 0, "the WAL was not checkpointed")
        rows = d.query("SELECT token FROM devices ORDER BY device_id")
        self.assertEqual([r["token"] for r in rows], tokens)
        self.assertEqual(len(d.query("SELECT * FROM memberships")), 1)

    def test_sigterm_exits_0_logs_stopped_and_checkpoints(self):
        d = self.start_daemon()
        tokens = self.populate(d)
        self.assertStoppedCleanly(d, signal.SIGTERM, tokens)

    def test_sigint_exits_0_logs_stopped_and_checkpoints(self):
        d = self.start_daemon()
        tokens = self.populate(d)
        self.assertStoppedCleanly(d, signal.SIGINT, tokens)

    def test_sigterm_with_idle_keepalive_connection_exits_promptly(self):
        d = self.start_daemon({"server": {"shutdown_timeout": "2s"}})
        conn = d.connection()
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)
        try:
            t0 = time.monotonic()
            code = d.stop(signal.SIGTERM, timeout=10)
            self.assertEqual(code, 0)
            self.assertLess(time.monotonic() - t0, 4.0)
        finally:
            conn.close()

    def test_sighup_raises_log_level_to_debug(self):
        d = self.start_daemon()
        self.assertEqual(d.request("GET", "/healthz")[0], 200)
        self.assertEqual(d.find_log(lambda f: f.get("msg") == "request"), [],
                         "request lines at info level")
        line = d.reload(d.config_text({"log": {"level": "debug"}}))
        self.assertEqual(line["msg"], "configuration reloaded", line["_line"])
        offset = d.log_offset()
        self.assertEqual(d.request("GET", "/healthz")[0], 200)
        d.wait_for_log(lambda f: f.get("msg") == "request" and f.get("method") == "GET"
                       and f.get("path") == "/healthz" and f.get("status") == "200",
                       since=offset, timeout=5)

    def test_sighup_with_broken_config_is_refused_and_old_config_kept(self):
        d = self.start_daemon()
        good = d.config_text()
        bad = good + "\n[log]\nlevel = chatty\n"
        bad_line = bad.count("\n", 0, bad.index("level = chatty")) + 1
        line = d.reload(bad)
        self.assertEqual(line["msg"], "reload refused", line["_line"])
        self.assertIn("%s:%d:" % (d.config_path, bad_line), line["_line"])
        # Still serving with the old configuration.
        self.assertEqual(d.request("GET", "/healthz")[0], 200)
        status, _, body, _ = d.request("PUT", "/v1/devices/d1", apns_device())
        self.assertEqual(status, 201)
        self.assertTrue(d.running())
        self.assertEqual(d.find_log(lambda f: f.get("level") == "debug"), [])
        # A fixed file is taken on the next SIGHUP.
        line = d.reload(d.config_text({"log": {"level": "debug"}}))
        self.assertEqual(line["msg"], "configuration reloaded", line["_line"])

    def test_sighup_changing_listen_is_refused_naming_the_option(self):
        d = self.start_daemon()
        other = harness.free_port()
        line = d.reload(d.config_text({"api": {"listen": "127.0.0.1:%d" % other}}))
        self.assertEqual(line["msg"], "reload refused", line["_line"])
        self.assertIn("api.listen", line["_line"])
        self.assertIn("needs a restart", line["_line"])
        self.assertEqual(d.request("GET", "/healthz")[0], 200)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", other), timeout=2).close()

    def test_sighup_rereads_the_key_file(self):
        d = self.start_daemon()
        first = d.key
        second = "second-" + os.urandom(20).hex()
        with open(d.key_path, "a") as f:
            f.write(second + "\n")
        line = d.reload()
        self.assertEqual(line["msg"], "configuration reloaded", line["_line"])
        for k in (first, second):
            self.assertEqual(d.request("GET", "/v1/clients/a/devices", key=k)[0], 200)
        with open(d.key_path, "w") as f:
            f.write("# only the second key now\n" + second + "\n")
        line = d.reload()
        self.assertEqual(line["msg"], "configuration reloaded", line["_line"])
        result = d.request("GET", "/v1/clients/a/devices", key=first)
        self.assertUnauthorized(result)
        self.assertEqual(d.request("GET", "/v1/clients/a/devices", key=second)[0], 200)
        self.assertFalse(d.secret_in_log(first))
        self.assertFalse(d.secret_in_log(second))

    def test_sighup_after_the_generated_key_file_was_deleted_keeps_the_old_key(self):
        d = self.start_daemon()
        key = d.key
        with open(d.key_path, "rb") as f:
            saved = f.read()
        os.unlink(d.key_path)
        line = d.reload()
        self.assertEqual(line["msg"], "reload refused", line["_line"])
        self.assertEqual(line.get("error"),
                         "API key file %s is missing: a reload does not generate a new "
                         "key (restore the file, or restart to generate one)" % d.key_path,
                         line["_line"])
        self.assertEqual(line.get("level"), "error", line["_line"])
        self.assertFalse(os.path.exists(d.key_path), "a reload generated a new key file")
        self.assertEqual(d.request("GET", "/v1/clients/a/devices", key=key)[0], 200)
        # Once the file is back, a reload takes it again.
        with open(d.key_path, "wb") as f:
            f.write(saved)
        os.chmod(d.key_path, 0o600)
        line = d.reload()
        self.assertEqual(line["msg"], "configuration reloaded", line["_line"])
        self.assertEqual(d.request("GET", "/v1/clients/a/devices", key=key)[0], 200)
        self.assertFalse(d.secret_in_log(key))

    def test_sigpipe_from_clients_that_hang_up_does_not_kill_the_daemon(self):
        # Writing to a unix socket whose peer has gone fails with EPIPE at once; on TCP
        # the peer's RST makes a later write fail. Both raise SIGPIPE unless ignored.
        d = self.start_daemon({"store": {"synchronous": "normal"},
                               "api": {"unix_socket": "{tmp}/api.sock"}})
        meta = {"blob": "x" * 3800}
        for i in range(150):
            status, _, _, raw = d.request("PUT", "/v1/devices/big-%03d" % i,
                                          apns_device("big", metadata=meta))
            self.assertEqual(status, 201, raw)
        request = ("GET /v1/clients/big/devices HTTP/1.1\r\nHost: localhost\r\n"
                   "Authorization: Bearer %s\r\n\r\n" % d.key).encode()
        for i in range(60):
            try:
                if i % 2 == 0:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(5)
                    s.connect(d.unix_socket)
                else:
                    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
                s.sendall(request)
                if i % 3 == 1:
                    s.recv(100)          # read a little, leave the rest unread
                elif i % 3 == 2:
                    time.sleep(0.01)     # let the daemon start writing
                s.close()
            except OSError:
                break
        time.sleep(0.3)
        self.assertTrue(d.running(), "the daemon died (exit status %s):\n%s"
                        % (d.proc.returncode, d.log_text()))
        self.assertEqual(d.request("GET", "/healthz")[0], 200)
        status, _, body, _ = d.request("GET", "/v1/clients/big/devices", unix=True)
        self.assertEqual(status, 200)
        self.assertEqual(len(body["devices"]), 150)


class HealthTest(DaemonTestCase):

    def test_healthz_is_ok_without_a_key(self):
        d = self.start_daemon()
        status, headers, body, _ = d.request("GET", "/healthz", key=None)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual(body, {"status": "ok"})

    def test_readyz_reports_ready_store_ok_and_loop_lag(self):
        d = self.start_daemon()
        status, headers, body, _ = d.request("GET", "/readyz", key=None)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual(set(body), {"status", "store", "loop_lag_ms"})
        self.assertEqual(body["status"], "ready")
        self.assertEqual(body["store"], "ok")
        self.assertIsInstance(body["loop_lag_ms"], int)
        self.assertGreaterEqual(body["loop_lag_ms"], 0)
        self.assertLess(body["loop_lag_ms"], 2000)


class ConnectionTest(DaemonTestCase):

    def test_readyz_is_503_while_the_store_cannot_write_and_200_after(self):
        d = self.start_daemon()

        def readyz():
            status, _, body, raw = d.request("GET", "/readyz", key=None)
            self.assertIsInstance(body.pop("loop_lag_ms", None), int, raw)
            return status, body

        def wait_for(want, timeout):
            deadline = time.monotonic() + timeout
            while True:
                got = readyz()
                if got == want:
                    return
                if time.monotonic() > deadline:
                    self.fail("/readyz is %r, not %r" % (got, want))
                time.sleep(0.05)

        ready = (200, {"status": "ready", "store": "ok"})
        wait_for(ready, 10)
        # Writes past offset 0 of any file fail with EFBIG, as on a full disk. The
        # daemon's own log is such a file: its lines are lost meanwhile.
        saved = resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (1, saved[1]))
        try:
            wait_for((503, {"status": "unavailable",
                            "store": "cannot write: disk I/O error"}), 15)
            # Reads still work: the registry answers.
            self.assertEqual(d.request("GET", "/v1/clients/a/devices")[0], 200)
        finally:
            resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, saved)
        offset = d.log_offset()
        wait_for(ready, 20)
        d.wait_for_log(lambda f: f.get("msg") == "store writes work again", since=offset)
        status, _, _, raw = d.request("PUT", "/v1/devices/d1", apns_device())
        self.assertEqual(status, 201, raw)
        self.assertTrue(d.running())

    def test_several_requests_on_one_keepalive_connection(self):
        d = self.start_daemon()
        conn = d.connection()
        self.addCleanup(conn.close)
        headers = {"Authorization": "Bearer " + d.key, "Content-Type": "application/json"}
        body = json.dumps(apns_device("alice")).encode()
        answers = []
        for method, path, data in (("PUT", "/v1/devices/k1", body),
                                   ("GET", "/v1/devices/k1", None),
                                   ("GET", "/v1/devices/missing", None),
                                   ("DELETE", "/v1/devices/k1", None),
                                   ("GET", "/healthz", None)):
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            resp.read()
            answers.append(resp.status)
        self.assertEqual(answers, [201, 200, 404, 204, 200])

    def test_request_timeout_closes_a_stalled_connection(self):
        d = self.start_daemon({"api": {"request_timeout": "1s"}})
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")   # never finished
        t0 = time.monotonic()
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
        self.assertGreater(took, 0.5)
        self.assertLess(took, 5.0, "the stalled connection was not closed")
        self.assertEqual(d.request("GET", "/healthz")[0], 200)

    def test_json_log_format_writes_one_object_per_line(self):
        d = self.start_daemon({"log": {"format": "json"}})
        self.assertEqual(d.request("GET", "/healthz")[0], 200)
        self.assertEqual(d.stop(), 0)
        lines = d.log_lines()
        self.assertTrue(lines)
        for line in lines:
            obj = json.loads(line)
            self.assertIsInstance(obj, dict)
            self.assertIn(obj.get("level"), ("error", "warn", "info", "debug"))
            self.assertIsInstance(obj.get("msg"), str)
            self.assertRegex(obj.get("ts", ""), harness.TIME_RE)
        self.assertIn("stopped", [json.loads(ln)["msg"] for ln in lines])


class UnixSocketTest(DaemonTestCase):

    def test_api_answers_on_unix_socket_with_configured_mode(self):
        d = self.start_daemon({"api": {"unix_socket": "{tmp}/api.sock",
                                       "unix_socket_mode": "0600"}})
        st = os.stat(d.unix_socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        status, _, body, _ = d.request("GET", "/healthz", key=None, unix=True)
        self.assertEqual((status, body), (200, {"status": "ok"}))
        device = apns_device("alice")
        status, _, created, raw = d.request("PUT", "/v1/devices/u1", device, unix=True)
        self.assertEqual(status, 201, raw)
        status, _, got, _ = d.request("GET", "/v1/devices/u1")
        self.assertEqual((status, got), (200, created))
        # Authentication applies on the socket too.
        result = d.request("GET", "/v1/devices/u1", key=None, unix=True)
        self.assertUnauthorized(result)

    def test_stale_unix_socket_after_kill_does_not_prevent_restart(self):
        d = self.start_daemon({"api": {"unix_socket": "{tmp}/api.sock",
                                       "unix_socket_mode": "0660"}})
        sock = d.unix_socket
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o660)
        d.kill9()
        self.assertTrue(os.path.exists(sock))
        d.start()
        status, _, body, _ = d.request("GET", "/healthz", key=None, unix=True)
        self.assertEqual((status, body), (200, {"status": "ok"}))


if __name__ == "__main__":
    harness.main()
