"""pushrelayctl against the real pushrelayd, over its unix socket and over TCP.

Every command is run as a process and checked on its exact output (text and --json),
its standard error and its exit status; every run also proves that the API key is not
printed. The dry-run daemon (no credentials) serves the registry and publish commands;
a second daemon delivers to the mock APNs, whose 410 answers make the token-removed
events that GET /v1/feedback, "feedback recent" and "feedback follow" show.
"""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import APP, DRY_RUN, STATES  # noqa: E402
from harness import free_port, uid  # noqa: E402

DEVICE_COLUMNS = ("DEVICE_ID", "PLATFORM", "ENVIRONMENT", "APP_ID", "TOKEN", "UPDATED_AT",
                  "LAST_SUCCESS_AT")
PUSH_COLUMNS = ("DEVICE_ID", "CLIENT_ID", "PLATFORM", "APP_ID", "STATE", "REASON", "ATTEMPTS",
                "UPDATED_AT")
FEEDBACK_COLUMNS = ("SEQ", "AT", "DEVICE_ID", "CLIENT_ID", "PLATFORM", "APP_ID", "REASON")
ENV_NAMES = ("PUSHRELAY_SOCKET", "PUSHRELAY_URL", "PUSHRELAY_KEY_FILE")

_TMP = None


def setUpModule():
    global _TMP
    _TMP = tempfile.mkdtemp(prefix="pushrelay-ctl-")


def tearDownModule():
    if _TMP is not None and not os.environ.get("PUSHRELAY_KEEP_TMP"):
        shutil.rmtree(_TMP, ignore_errors=True)


def ctl_path():
    top = os.environ.get("PUSHRELAY_TOP_BUILDDIR", ".")
    return os.path.abspath(os.path.join(top, "src", "pushrelayctl"))


def ctl_env(extra=None):
    """The environment without the variables pushrelayctl reads, plus extra."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(extra or {})
    return env


def table(rows):
    """Rows as pushrelayctl prints them: columns two spaces apart, no trailing blanks."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[c] + " " * (widths[c] - len(r[c]) + 2) for c in range(len(r) - 1)]
        lines.append("".join(cells) + r[-1] + "\n")
    return "".join(lines)


def text(value):
    """A JSON value as pushrelayctl shows it in text."""
    if value is None:
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def redacted(token):
    return "%s\u2026(%d)" % (token[:8], len(token))


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


class LineReader:
    """Whole lines of a process's stdout, as they come."""

    def __init__(self, proc):
        self.fd = proc.stdout.fileno()
        self.data = b""

    def line(self, timeout):
        """The next line (with its newline), or None after timeout or at the end."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.data:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return None
            self.data += chunk
        line, _, self.data = self.data.partition(b"\n")
        return line.decode("utf-8") + "\n"


class CtlCase(harness.DaemonTestCase):
    """One daemon per class, with a unix socket and a TCP listener, debug log."""

    extra_config = {}

    @classmethod
    def setUpClass(cls):
        cls.mock = None
        cls.daemon = None
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls):
        config = {"api": {"unix_socket": "{tmp}/api.sock"}, "log": {"level": "debug"}}
        config.update(cls.extra_config)
        cls.daemon = harness.Daemon(config=config)
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        if cls.daemon is not None:
            cls.daemon.cleanup()
        if cls.mock is not None:
            cls.mock.stop()

    def setUp(self):
        self.log_start = self.daemon.log_offset()

    # -- running pushrelayctl --

    def argv(self, args, via="unix", key=True):
        argv = [ctl_path()]
        if via == "unix":
            argv += ["-s", self.daemon.unix_socket]
        elif via == "tcp":
            argv += ["-u", "http://127.0.0.1:%d" % self.daemon.port]
        if key:
            argv += ["-k", self.daemon.key_path]
        return argv + list(args)

    def ctl(self, *args, via="unix", key=True, env=None, timeout=30):
        """Run pushrelayctl: (exit status, stdout, stderr); the key is never in them."""
        p = subprocess.run(self.argv(args, via, key), stdin=subprocess.DEVNULL,
                           capture_output=True, env=ctl_env(env), timeout=timeout)
        out = p.stdout.decode("utf-8")
        err = p.stderr.decode("utf-8")
        self.assertNoKey(out + err)
        return p.returncode, out, err

    def assertNoKey(self, output):
        for key in self.daemon.read_keys():
            self.assertNotIn(key, output, "the API key was printed")

    def assertCtl(self, args, status, stdout, stderr="", **kwargs):
        """pushrelayctl ARGS exits with status and prints exactly stdout and stderr."""
        got = self.ctl(*args, **kwargs)
        self.assertEqual(got, (status, stdout, stderr), "pushrelayctl %s" % " ".join(args))

    # -- the API directly --

    def api(self, method, path, body=None, status=200):
        st, _, parsed, raw = self.daemon.request(method, path, body=body)
        self.assertEqual(st, status, raw)
        return parsed

    def register(self, client_id, device_id=None, **extra):
        device_id = device_id or "dev-" + uid()
        return self.api("PUT", "/v1/devices/" + harness.quote(device_id),
                        harness.apns_device(client_id=client_id, **extra), status=201)

    def device_rows(self, devices):
        return [DEVICE_COLUMNS] + [
            (d["device_id"], d["platform"], text(d["environment"]), d["app_id"],
             redacted(d["token"]), d["updated_at"], text(d["last_success_at"]))
            for d in devices]

    def push_text(self, push):
        counts = ", ".join("%s %d" % (k, v) for k, v in push["counts"].items())
        head = table([("push_id", push["push_id"]), ("created_at", push["created_at"]),
                      ("finished_at", text(push["finished_at"])), ("counts", counts)])
        if not push["devices"]:
            return head
        return head + "\n" + table([PUSH_COLUMNS] + [
            (d["device_id"], text(d["client_id"]), d["platform"], d["app_id"], d["state"],
             text(d["reason"]), str(d["attempts"]), d["updated_at"])
            for d in push["devices"]])

    def requests_logged(self, path):
        """How many answers to path the daemon logged (at debug) since the test began."""
        return len(self.daemon.find_log(
            lambda f: f.get("msg") == "request" and f.get("path") == path,
            since=self.log_start))


class CtlDryRunTest(CtlCase):
    """The registry and publish commands against a daemon without credentials."""

    def test_status_is_ready_over_socket_and_tcp_in_text_and_json(self):
        for via in ("unix", "tcp"):
            code, out, err = self.ctl("status", via=via, key=False)
            self.assertEqual((code, err), (0, ""), out)
            lines = out.splitlines()
            self.assertEqual(lines[:3], ["healthz      ok", "readyz       ready",
                                         "store        ok"])
            self.assertRegex(lines[3], r"^loop_lag_ms  \d+$")
            self.assertEqual(len(lines), 4)
            code, out, err = self.ctl("--json", "status", via=via, key=False)
            self.assertEqual((code, err), (0, ""))
            got = json.loads(out)
            self.assertIsInstance(got["readyz"].get("loop_lag_ms"), int)
            self.assertEqual(got, {"healthz": {"status": "ok"},
                                   "readyz": {"status": "ready", "store": "ok",
                                              "loop_lag_ms": got["readyz"]["loop_lag_ms"]}})
            self.assertEqual(out, compact(got))

    def test_status_without_a_daemon_exits_3(self):
        missing = os.path.join(_TMP, "no-such.sock")
        self.assertEqual(
            subprocess.run([ctl_path(), "-s", missing, "status"], capture_output=True,
                           env=ctl_env()).returncode, 3)
        self.assertCtl(["-s", missing, "status"], 3, "",
                       "pushrelayctl: cannot reach pushrelayd at %s: No such file or "
                       "directory\n" % missing, via=None, key=False)
        port = free_port()
        code, out, err = self.ctl("-u", "http://127.0.0.1:%d" % port, "status", via=None,
                                  key=False)
        self.assertEqual((code, out), (3, ""))
        self.assertRegex(err, r"^pushrelayctl: cannot reach pushrelayd at "
                              r"http://127\.0\.0\.1:%d: .*\n$" % port)
        # Commands that need the key say the same.
        code, out, err = self.ctl("-s", missing, "devices", "list", "alice", via=None)
        self.assertEqual((code, out), (3, ""))
        self.assertTrue(err.startswith("pushrelayctl: cannot reach pushrelayd at "), err)

    def test_stats_prints_every_figure_or_says_the_endpoint_is_missing(self):
        st, _, body, raw = self.daemon.request("GET", "/v1/stats")
        if st == 404:
            self.assertCtl(["stats"], 1, "", "pushrelayctl: this pushrelayd has no "
                           "statistics endpoint (GET /v1/stats): it is older than "
                           "pushrelayctl\n")
            return
        self.assertEqual(st, 200, raw)
        code, out, err = self.ctl("--json", "stats")
        self.assertEqual((code, err), (0, ""))
        got = json.loads(out)
        self.assertEqual(list(got), list(body))
        self.assertEqual(got["version"], body["version"])
        self.assertEqual(out, compact(got))
        code, out, err = self.ctl("stats")
        self.assertEqual((code, err), (0, ""))
        names = [line.split("  ")[0] for line in out.splitlines()]
        self.assertIn("version", names)
        self.assertRegex(out, r"(?m)^version +%s$" % body["version"].replace(".", r"\."))
        self.assertTrue(any(n.startswith("delivery.") for n in names), names)

    def test_devices_list_and_show_in_text_and_json(self):
        client = "cli-" + uid()
        a = self.register(client, "a-" + uid(), locale="en-GB", metadata={"v": "4.2"})
        b = self.register(client, "b-" + uid(), environment="sandbox")
        listed = self.api("GET", "/v1/clients/%s/devices" % client)
        self.assertEqual([d["device_id"] for d in listed["devices"]],
                         [a["device_id"], b["device_id"]])
        self.assertCtl(["devices", "list", client], 0,
                       table(self.device_rows(listed["devices"])))
        self.assertCtl(["devices", "list", client, "--json"], 0, compact(listed), via="tcp")
        nobody = "nobody-" + uid()
        self.assertCtl(["devices", "list", nobody], 0, "client %s has no devices\n" % nobody)

        shown = self.api("GET", "/v1/devices/" + a["device_id"])
        rows = [(k, redacted(v) if k == "token" else text(v)) for k, v in shown.items()]
        self.assertEqual(rows[0], ("device_id", a["device_id"]))
        self.assertIn(("metadata", '{"v":"4.2"}'), rows)
        self.assertIn(("locale", "en-GB"), rows)
        self.assertCtl(["devices", "show", a["device_id"]], 0, table(rows))
        self.assertCtl(["--json", "devices", "show", a["device_id"]], 0, compact(shown))

    def test_devices_show_of_an_unknown_device_exits_4(self):
        for args in (["devices", "show", "ghost-" + uid()],
                     ["--json", "devices", "show", "ghost-" + uid()],
                     ["devices", "remove", "ghost-" + uid()]):
            self.assertCtl(args, 4, "", "pushrelayctl: not_found: no such device\n")
        self.assertCtl(["push", "show", "0" * 32], 4, "",
                       "pushrelayctl: not_found: no such push (or it has expired)\n")

    def test_ids_are_percent_encoded_in_paths(self):
        client = "a/b c?d#" + uid()
        d = self.register(client, "dev/é %s" % uid())
        listed = self.api("GET", "/v1/clients/%s/devices" % harness.quote(client))
        self.assertEqual([x["device_id"] for x in listed["devices"]], [d["device_id"]])
        self.assertCtl(["--json", "devices", "list", client], 0, compact(listed))
        self.assertCtl(["devices", "remove", d["device_id"]], 0,
                       "removed device %s\n" % d["device_id"])

    def test_devices_remove_and_remove_client(self):
        client = "rm-" + uid()
        a = self.register(client)
        b = self.register(client)
        c = self.register(client)
        self.assertCtl(["devices", "remove", a["device_id"]], 0,
                       "removed device %s\n" % a["device_id"])
        self.api("GET", "/v1/devices/" + a["device_id"], status=404)
        self.assertCtl(["--json", "devices", "remove", b["device_id"]], 0,
                       compact({"device_id": b["device_id"], "removed": True}))
        self.api("GET", "/v1/devices/" + b["device_id"], status=404)
        self.assertCtl(["devices", "remove-client", client], 0,
                       "removed 1 device of client %s\n" % client)
        self.api("GET", "/v1/devices/" + c["device_id"], status=404)
        self.assertCtl(["devices", "remove-client", client], 0,
                       "removed 0 devices of client %s\n" % client)
        self.register(client)
        self.register(client)
        self.assertCtl(["devices", "remove-client", "--json", client], 0,
                       compact({"client_id": client, "deleted": 2}), via="tcp")
        self.assertCtl(["devices", "remove-client", client], 0,
                       "removed 0 devices of client %s\n" % client)

    def test_members_add_remove_mute_and_mentions_only(self):
        room = "room-" + uid()
        self.assertCtl(["members", "add", room, "alice"], 0, "added alice to room %s\n" % room)
        self.assertCtl(["members", "add", room, "alice"], 0,
                       "alice is already a member of room %s\n" % room)
        code, out, err = self.ctl("--json", "members", "add", room, "bob")
        self.assertEqual((code, err), (0, ""))
        bob = json.loads(out)
        self.assertEqual(bob, {"room_id": room, "client_id": "bob",
                               "joined_at": bob["joined_at"], "muted_until": None,
                               "mentions_only": False})
        self.assertTime(bob["joined_at"], near_ms=harness.now_ms())

        self.assertCtl(["members", "mute", room, "alice", "--until", "2031-02-03T04:05:06Z"],
                       0, "muted alice in room %s until 2031-02-03T04:05:06.000Z\n" % room)
        page = self.api("GET", "/v1/rooms/%s/members" % room)
        self.assertEqual([(m["client_id"], m["muted_until"]) for m in page["members"]],
                         [("alice", "2031-02-03T04:05:06.000Z"), ("bob", None)])
        alice = page["members"][0]
        self.assertCtl(["members", "mute", room, "alice", "--off"], 0,
                       "unmuted alice in room %s\n" % room)
        alice["muted_until"] = None
        self.assertCtl(["--json", "members", "mentions-only", room, "alice", "on"], 0,
                       compact(dict(alice, mentions_only=True)))
        self.assertCtl(["members", "mentions-only", room, "alice", "off"], 0,
                       "alice in room %s: notified of every message\n" % room)
        self.assertCtl(["members", "mentions-only", room, "bob", "on"], 0,
                       "bob in room %s: notified only when mentioned\n" % room)
        self.assertEqual(self.api("GET", "/v1/rooms/%s/members" % room)["members"],
                         [alice, dict(bob, mentions_only=True)])

        self.assertCtl(["members", "mute", room, "alice", "--until", "tomorrow"], 1, "",
                       "pushrelayctl: invalid_field: muted_until: must be an RFC 3339 time "
                       "such as 2026-01-02T15:04:05Z, or null\n")
        self.assertCtl(["members", "mute", room, "carol", "--off"], 4, "",
                       "pushrelayctl: not_found: not a member of this room\n")
        self.assertCtl(["members", "remove", room, "alice"], 0,
                       "removed alice from room %s\n" % room)
        self.assertCtl(["--json", "members", "remove", room, "bob"], 0,
                       compact({"room_id": room, "client_id": "bob", "removed": True}))
        self.assertCtl(["members", "remove", room, "bob"], 4, "",
                       "pushrelayctl: not_found: not a member of this room\n")

    def test_members_list_follows_pages_up_to_the_limit(self):
        room = "list-" + uid()
        clients = ["c%d" % i for i in range(1, 6)]
        for c in clients:
            self.api("PUT", "/v1/rooms/%s/members/%s" % (room, c), status=201)
        self.api("PUT", "/v1/rooms/%s/members/c2/prefs" % room,
                 {"muted_until": "2030-01-01T00:00:00Z", "mentions_only": True})
        members = self.api("GET", "/v1/rooms/%s/members?limit=1000" % room)["members"]
        rows = [("CLIENT_ID", "JOINED_AT", "MUTED_UNTIL", "MENTIONS_ONLY")] + [
            (m["client_id"], m["joined_at"], text(m["muted_until"]), text(m["mentions_only"]))
            for m in members]
        self.assertEqual(rows[2][2:], ("2030-01-01T00:00:00.000Z", "yes"))
        path = "/v1/rooms/%s/members" % room

        self.log_start = self.daemon.log_offset()
        self.assertCtl(["members", "list", room, "--page-size", "2"], 0, table(rows))
        self.assertEqual(self.requests_logged(path), 3)     # 2 + 2 + 1

        self.log_start = self.daemon.log_offset()
        self.assertCtl(["members", "list", room, "--json"], 0,
                       compact({"room_id": room, "members": members, "next_after": None}))
        self.assertEqual(self.requests_logged(path), 1)

        self.assertCtl(["members", "list", room, "--limit", "3", "--page-size", "2",
                        "--json"], 0,
                       compact({"room_id": room, "members": members[:3], "next_after": "c3"}))
        self.assertCtl(["members", "list", room, "--limit", "5", "--json"], 0,
                       compact({"room_id": room, "members": members, "next_after": None}),
                       via="tcp")
        self.assertCtl(["members", "list", room, "--limit", "1"], 0, table(rows[:2]))
        empty = "empty-" + uid()
        self.assertCtl(["members", "list", empty], 0, "room %s has no members\n" % empty)
        self.assertCtl(["--json", "members", "list", empty], 0,
                       compact({"room_id": empty, "members": [], "next_after": None}))

    def test_send_prints_the_push_id_and_its_payload_is_sent(self):
        client = "send-" + uid()
        a = self.register(client)
        code, out, err = self.ctl("send", "--client", client, "--title", "Support",
                                  "--body", "hello there", "--data", "room=r1",
                                  "--data", "kind=a=b")
        self.assertEqual((code, err), (0, ""))
        self.assertRegex(out, r"^[0-9a-f]{32}\n$")
        push_id = out.strip()
        line = self.daemon.wait_for_log(
            lambda f: f.get("msg") == "dry run: would send" and
            f.get("device_id") == a["device_id"], since=self.log_start)
        payload = json.loads(line["payload"])
        self.assertEqual(payload["aps"]["alert"], {"title": "Support", "body": "hello there"})
        self.assertEqual((payload["room"], payload["kind"]), ("r1", "a=b"))
        self.assertEqual(self.api("GET", "/v1/push/" + push_id)["push_id"], push_id)

        code, out, err = self.ctl("--json", "send", "--device", a["device_id"],
                                  "--device", "ghost-1", "--body", "x", via="tcp")
        self.assertEqual((code, err), (0, "pushrelayctl: warning: no such device: ghost-1\n"))
        accepted = json.loads(out)
        self.assertEqual(out, compact(accepted))
        self.assertEqual(accepted, {"push_id": accepted["push_id"], "devices": 1,
                                    "unknown_device_ids": ["ghost-1"]})

    def test_send_wait_prints_each_device_outcome(self):
        room = "wait-" + uid()
        a = self.register("w1-" + uid())
        b = self.register("w2-" + uid())
        for d in (a, b):
            self.api("PUT", "/v1/rooms/%s/members/%s" % (room, d["client_id"]), status=201)
        code, out, err = self.ctl("send", "--room", room, "--body", "hi", "--wait")
        self.assertEqual((code, err), (0, ""), out)
        push_id = out.split("\n")[0].split()[-1]
        push = self.api("GET", "/v1/push/" + push_id)
        self.assertIsNotNone(push["finished_at"])
        self.assertEqual(push["counts"], dict(dict.fromkeys(STATES, 0), sent=2))
        self.assertEqual([(d["state"], d["reason"]) for d in push["devices"]],
                         [("sent", DRY_RUN)] * 2)
        self.assertEqual(out, self.push_text(push))
        self.assertCtl(["push", "show", push_id], 0, self.push_text(push))
        self.assertCtl(["--json", "push", "show", push_id], 0, compact(push), via="tcp")

        code, out, err = self.ctl("send", "--json", "--client", a["client_id"], "--body",
                                  "again", "--wait")
        self.assertEqual((code, err), (0, ""))
        push = json.loads(out)
        self.assertEqual(push, self.api("GET", "/v1/push/" + push["push_id"]))
        self.assertEqual(push["counts"]["sent"], 1)

        # Nobody to send to: finished at once, nothing failed.
        code, out, err = self.ctl("send", "--client", "nobody-" + uid(), "--body", "x",
                                  "--wait")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out.splitlines()[-1],
                         "counts       queued 0, sending 0, retrying 0, sent 0, failed 0, "
                         "token_removed 0")

    def test_server_refusals_exit_1_with_code_and_message(self):
        self.assertCtl(["send", "--client", "x"], 1, "", self.refusal(
            "POST", "/v1/push", {"recipients": {"client_ids": ["x"]}, "notification": {}}))
        self.assertCtl(["send", "--client", "x", "--body", "b", "--data", "from=me"], 1, "",
                       self.refusal("POST", "/v1/push", {
                           "recipients": {"client_ids": ["x"]},
                           "notification": {"body": "b", "data": {"from": "me"}}}))
        long_id = "x" * 129
        self.assertCtl(["devices", "show", long_id], 1, "",
                       "pushrelayctl: invalid_field: device_id: must be at most 128 bytes\n")

    def refusal(self, method, path, body):
        """The stderr line of pushrelayctl for the API's error to this request."""
        st, _, parsed, raw = self.daemon.request(method, path, body=body)
        self.assertEqual(st, 400, raw)
        return "pushrelayctl: %s: %s\n" % (parsed["error"]["code"], parsed["error"]["message"])

    def test_a_wrong_or_missing_key_is_refused_and_never_printed(self):
        wrong = os.path.join(_TMP, "wrong-keys-" + uid())
        secret = "wrong-" + os.urandom(16).hex()
        with open(wrong, "w") as f:
            f.write("# not the daemon's\n\n   %s   # trailing comment\n" % secret)
        args = ["-s", self.daemon.unix_socket, "-k", wrong, "devices", "list", "alice"]
        code, out, err = self.ctl(*args, via=None, key=False)
        self.assertEqual((code, out, err),
                         (1, "", "pushrelayctl: unauthorized: missing or invalid API key\n"))
        self.assertNotIn(secret, out + err)
        # The key file from the environment.
        code, out, err = self.ctl("-s", self.daemon.unix_socket, "devices", "list", "alice",
                                  via=None, key=False, env={"PUSHRELAY_KEY_FILE": wrong})
        self.assertEqual((code, out, err),
                         (1, "", "pushrelayctl: unauthorized: missing or invalid API key\n"))
        self.assertNotIn(secret, out + err)
        # No key at all (unless this machine has a readable packaged key file).
        code, out, err = self.ctl("-s", self.daemon.unix_socket, "devices", "list", "alice",
                                  via=None, key=False)
        self.assertEqual(code, 1)
        self.assertTrue(err.startswith(
            "pushrelayctl: unauthorized: missing or invalid API key\n"), err)
        if not os.access("/var/lib/pushrelay/api-keys", os.R_OK):
            self.assertEqual(err, "pushrelayctl: unauthorized: missing or invalid API key\n"
                             "pushrelayctl: no API key was sent: give -k FILE or set "
                             "PUSHRELAY_KEY_FILE (/var/lib/pushrelay/api-keys is not "
                             "readable)\n")
        # An unreadable or empty key file is a usage error, and status needs no key.
        missing = os.path.join(_TMP, "missing-" + uid())
        self.assertCtl(["-k", missing, "devices", "list", "alice"], 2, "",
                       "pushrelayctl: cannot read an API key from %s: No such file or "
                       "directory\n" % missing, key=False)
        empty = os.path.join(_TMP, "empty-" + uid())
        with open(empty, "w") as f:
            f.write("# only a comment\n")
        self.assertCtl(["-k", empty, "devices", "list", "alice"], 2, "",
                       "pushrelayctl: cannot read an API key from %s: no key in the file\n"
                       % empty, key=False)
        code, _, err = self.ctl("-k", missing, "status", key=False)
        self.assertEqual((code, err), (0, ""))

    def test_environment_names_the_daemon_and_the_key(self):
        client = "env-" + uid()
        d = self.register(client)
        listed = compact(self.api("GET", "/v1/clients/%s/devices" % client))
        key_env = {"PUSHRELAY_KEY_FILE": self.daemon.key_path}
        self.assertCtl(["--json", "devices", "list", client], 0, listed, via=None, key=False,
                       env=dict(key_env, PUSHRELAY_SOCKET=self.daemon.unix_socket))
        self.assertCtl(["--json", "devices", "list", client], 0, listed, via=None, key=False,
                       env=dict(key_env, PUSHRELAY_URL="http://127.0.0.1:%d/"
                                % self.daemon.port))
        # The command line wins over the environment.
        self.assertCtl(["--json", "devices", "list", client], 0, listed, via="unix",
                       env={"PUSHRELAY_URL": "http://127.0.0.1:%d" % free_port()})
        self.assertCtl(["--json", "devices", "list", client], 2, "",
                       "pushrelayctl: PUSHRELAY_SOCKET and PUSHRELAY_URL are both set\n"
                       "Try 'pushrelayctl --help'.\n", via=None, key=False,
                       env=dict(key_env, PUSHRELAY_SOCKET=self.daemon.unix_socket,
                                PUSHRELAY_URL="http://127.0.0.1:1"))
        self.assertEqual(d["client_id"], client)

    def test_bad_usage_exits_2(self):
        cases = [
            ([], "pushrelayctl: no command given\nTry 'pushrelayctl --help'.\n"),
            (["frobnicate"], "pushrelayctl: unknown command 'frobnicate'\n"
                             "Try 'pushrelayctl --help'.\n"),
            (["devices"], "pushrelayctl: devices: say which (pushrelayctl --help lists "
                          "them)\nTry 'pushrelayctl --help'.\n"),
            (["devices", "burn", "x"], "pushrelayctl: devices: unknown command 'burn'\n"
                                       "Try 'pushrelayctl --help'.\n"),
            (["devices", "show"], "pushrelayctl: missing arguments\n"
                                  "usage: pushrelayctl [OPTIONS] devices show DEVICE\n"),
            (["devices", "show", "a", "b"], "pushrelayctl: too many arguments\n"
                                            "usage: pushrelayctl [OPTIONS] devices show "
                                            "DEVICE\n"),
            (["status", "--wait"], "pushrelayctl: --wait does not apply here\n"
                                   "usage: pushrelayctl [OPTIONS] status\n"),
            (["members", "list", "r", "--limit", "0"],
             "pushrelayctl: --limit: must be a number from 1 to 9223372036854775807\n"
             "Try 'pushrelayctl --help'.\n"),
            (["members", "list", "r", "--page-size", "1001"],
             "pushrelayctl: --page-size: must be a number from 1 to 1000\n"
             "Try 'pushrelayctl --help'.\n"),
            (["members", "mute", "r", "c"], "pushrelayctl: give one of --until TIME and "
                                            "--off\nusage: pushrelayctl [OPTIONS] members "
                                            "mute ROOM CLIENT --until TIME | --off\n"),
            (["members", "mute", "r", "c", "--off", "--until", "2030-01-01T00:00:00Z"],
             "pushrelayctl: give one of --until TIME and --off\nusage: pushrelayctl "
             "[OPTIONS] members mute ROOM CLIENT --until TIME | --off\n"),
            (["members", "mentions-only", "r", "c", "maybe"],
             "pushrelayctl: mentions-only: say on or off, not 'maybe'\nusage: pushrelayctl "
             "[OPTIONS] members mentions-only ROOM CLIENT on|off\n"),
            (["send", "--body", "x"],
             "pushrelayctl: say who gets it: --client, --device or --room\nusage: "
             "pushrelayctl [OPTIONS] send (--client C | --device D | --room R)... "
             "[--title T] [--body B] [--data K=V]... [--wait]\n"),
            (["send", "--client", "a", "--data", "novalue"],
             "pushrelayctl: --data: 'novalue' is not KEY=VALUE\nusage: pushrelayctl "
             "[OPTIONS] send (--client C | --device D | --room R)... [--title T] [--body B] "
             "[--data K=V]... [--wait]\n"),
            (["send", "--client", "a", "--data", "k=1", "--data", "k=2"],
             "pushrelayctl: --data: k given twice\nusage: pushrelayctl [OPTIONS] send "
             "(--client C | --device D | --room R)... [--title T] [--body B] "
             "[--data K=V]... [--wait]\n"),
            (["send", "--room", "a", "--room", "b", "--body", "x"],
             "pushrelayctl: --room: give one room\nTry 'pushrelayctl --help'.\n"),
            (["feedback", "recent", "--after", "-1"],
             "pushrelayctl: --after: must be a number from 0 to 9223372036854775807\n"
             "Try 'pushrelayctl --help'.\n"),
            (["--bogus", "status"], "pushrelayctl: unknown option --bogus\n"
                                    "Try 'pushrelayctl --help'.\n"),
            (["status", "--socket"], "pushrelayctl: --socket needs a value\n"
                                     "Try 'pushrelayctl --help'.\n"),
            (["-u", "ftp://x", "status"], "pushrelayctl: ftp://x: the URL must start with "
                                          "http:// or https://\n"
                                          "Try 'pushrelayctl --help'.\n"),
        ]
        for args, stderr in cases:
            self.assertCtl(args, 2, "", stderr, via=None, key=False)
        self.assertCtl(["-u", "http://127.0.0.1:1", "status"], 2, "",
                       "pushrelayctl: give -s or -u, not both\nTry 'pushrelayctl --help'.\n")

    def test_help_and_version(self):
        code, out, err = self.ctl("--help", via=None, key=False)
        self.assertEqual((code, err), (0, ""))
        self.assertTrue(out.startswith("usage: pushrelayctl [-s PATH | -u URL] [-k FILE] "
                                       "[--json] COMMAND [ARGS]\n"), out)
        for usage in ("status", "stats", "devices list CLIENT", "devices show DEVICE",
                      "devices remove DEVICE", "devices remove-client CLIENT",
                      "members list ROOM [--limit N] [--page-size N]",
                      "members add ROOM CLIENT", "members remove ROOM CLIENT",
                      "members mute ROOM CLIENT --until TIME | --off",
                      "members mentions-only ROOM CLIENT on|off", "push show PUSH_ID",
                      "feedback recent [--after SEQ]", "feedback follow [--after SEQ]"):
            self.assertIn("\n  %s\n" % usage, out)
        code, version, err = harness.run_pushrelayd(["--version"])
        self.assertEqual(code, 0)
        self.assertCtl(["--version"], 0, version.replace("pushrelayd", "pushrelayctl"),
                       via=None, key=False)
        self.assertCtl(["-V"], 0, version.replace("pushrelayd", "pushrelayctl"), via=None,
                       key=False)

    def test_feedback_endpoint_checks_its_query_and_long_polls(self):
        self.assertErrorBody(self.daemon.request("GET", "/v1/feedback?after=x"), 400,
                             "invalid_field", "after: must be an integer between 0 and "
                             "9223372036854775807", "after")
        self.assertErrorBody(self.daemon.request("GET", "/v1/feedback?wait=61"), 400,
                             "invalid_field", "wait: must be an integer between 0 and 60",
                             "wait")
        self.assertErrorBody(self.daemon.request("GET", "/v1/feedback?limit=5"), 400,
                             "invalid_field", "limit: unknown query parameter", "limit")
        self.assertUnauthorized(self.daemon.request("GET", "/v1/feedback", key=None))
        self.assertEqual(self.api("GET", "/v1/feedback"), {"events": [], "next": 0})
        # An after beyond the newest (a restarted daemon) starts again from 0.
        self.assertEqual(self.api("GET", "/v1/feedback?after=42"), {"events": [], "next": 0})
        started = time.monotonic()
        self.assertEqual(self.api("GET", "/v1/feedback?after=0&wait=1"),
                         {"events": [], "next": 0})
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertCtl(["feedback", "recent"], 0, "no feedback events\n")
        self.assertCtl(["--json", "feedback", "recent"], 0, compact({"events": [], "next": 0}))


class CtlFeedbackTest(CtlCase):
    """Token-removed events from the mock APNs' 410s, as pushrelayctl shows them."""

    @classmethod
    def start(cls):
        certs = mockctl.Certs.generate(os.path.join(_TMP, "certs"))
        cls.mock = fixtures.apns_mock(certs)
        cls.extra_config = {"delivery": fixtures.delivery_config(),
                            **fixtures.apns_section(certs, cls.mock.url(""))}
        super().start()

    def setUp(self):
        super().setUp()
        self.mock.clear_rules()

    def doomed_device(self, client):
        """A device whose next push APNs answers with 410 Unregistered."""
        d = self.register(client)
        self.mock.add_rule(token=d["token"], status=410, reason="Unregistered",
                           timestamp=harness.time_to_ms(d["updated_at"]) + 1000)
        return d

    def follow(self, *args):
        proc = subprocess.Popen(self.argv(["feedback", "follow"] + list(args)),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=ctl_env())
        self.addCleanup(self.stop_follow, proc)
        return proc

    def stop_follow(self, proc):
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()

    def event_for(self, device_id):
        events = self.api("GET", "/v1/feedback")["events"]
        [event] = [e for e in events if e["device_id"] == device_id]
        return event

    def test_follow_prints_the_token_removed_event_of_a_410_as_it_happens(self):
        proc = self.follow()
        # Its first look (which skips what is already kept) has been answered.
        self.daemon.wait_for_log(lambda f: f.get("msg") == "request" and
                                 f.get("path") == "/v1/feedback", since=self.log_start)
        client = "gone-" + uid()
        d = self.doomed_device(client)
        started = time.monotonic()
        code, out, err = self.ctl("send", "--client", client, "--body", "hi")
        self.assertEqual((code, err), (0, ""))
        line = LineReader(proc).line(10)
        self.assertIsNotNone(line, "feedback follow printed nothing")
        # The long-poll (25 s) answered when the event came, not when it ran out.
        self.assertLess(time.monotonic() - started, 10)
        event = self.event_for(d["device_id"])
        self.assertEqual(event, {"seq": event["seq"], "event": "token_removed",
                                 "device_id": d["device_id"], "client_id": client,
                                 "platform": "apns", "app_id": APP, "reason": "Unregistered",
                                 "at": event["at"]})
        self.assertTime(event["at"], near_ms=harness.now_ms(), slack_ms=10000)
        self.assertEqual(line, "%d %s %s %s apns %s Unregistered\n"
                         % (event["seq"], event["at"], d["device_id"], client, APP))
        self.assertNoKey(line)
        self.assertIsNone(proc.poll())
        proc.terminate()
        self.assertEqual(proc.wait(10), -signal.SIGTERM)
        self.assertEqual(proc.stderr.read(), b"")

    def test_follow_json_after_a_seq_and_recent(self):
        before = self.api("GET", "/v1/feedback")["next"]
        proc = self.follow("--json", "--after", str(before))
        clients = ["j1-" + uid(), "j2-" + uid()]
        devices = [self.doomed_device(c) for c in clients]
        self.assertEqual(self.ctl("send", "--client", clients[0], "--client", clients[1],
                                  "--body", "hi")[0], 0)
        reader = LineReader(proc)
        lines = []
        while len(lines) < 2:
            line = reader.line(10)
            self.assertIsNotNone(line, "feedback follow --json printed %r" % lines)
            lines.append(line)
        events = [self.event_for(d["device_id"]) for d in devices]
        events.sort(key=lambda e: e["seq"])
        self.assertEqual(lines, [compact(e) for e in events])
        self.assertEqual([e["seq"] for e in events], [before + 1, before + 2])
        self.stop_follow(proc)

        kept = self.api("GET", "/v1/feedback")
        self.assertEqual(kept["next"], kept["events"][-1]["seq"])
        self.assertCtl(["--json", "feedback", "recent"], 0, compact(kept))
        self.assertCtl(["feedback", "recent", "--json", "--after", str(before)], 0,
                       compact({"events": events, "next": before + 2}), via="tcp")
        self.assertCtl(["feedback", "recent", "--after", str(before)], 0, table(
            [FEEDBACK_COLUMNS] + [(str(e["seq"]), e["at"], e["device_id"], e["client_id"],
                                   "apns", APP, "Unregistered") for e in events]))
        self.assertCtl(["feedback", "recent", "--after", str(before + 2)], 0,
                       "no feedback events\n")
        # Answered at once when there is something after the seq, even with a wait.
        started = time.monotonic()
        self.assertEqual(self.api("GET", "/v1/feedback?after=%d&wait=30" % before)["events"],
                         events)
        self.assertLess(time.monotonic() - started, 5)

    def test_send_wait_exits_1_when_a_token_was_removed(self):
        client = "mixed-" + uid()
        good = self.register(client)
        bad = self.doomed_device(client)
        code, out, err = self.ctl("send", "--client", client, "--body", "hi", "--wait")
        self.assertEqual((code, err), (1, ""), out)
        push_id = out.split("\n")[0].split()[-1]
        push = self.api("GET", "/v1/push/" + push_id)
        self.assertEqual(push["counts"], dict(dict.fromkeys(STATES, 0), sent=1,
                                              token_removed=1))
        self.assertEqual({d["device_id"]: (d["state"], d["reason"]) for d in push["devices"]},
                         {good["device_id"]: ("sent", None),
                          bad["device_id"]: ("token_removed", "Unregistered")})
        self.assertEqual(out, self.push_text(push))
        self.api("GET", "/v1/devices/" + bad["device_id"], status=404)
        # Everything delivered: 0.
        code, out, err = self.ctl("--json", "send", "--client", client, "--body", "again",
                                  "--wait")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)["counts"], dict(dict.fromkeys(STATES, 0), sent=1))


class CtlShutdownTest(harness.DaemonTestCase):
    """A daemon that stops while feedback follow waits on it."""

    def test_sigterm_during_a_long_poll_stops_cleanly_and_follow_exits_3(self):
        d = self.start_daemon(config={"api": {"unix_socket": "{tmp}/api.sock"},
                                      "server": {"shutdown_timeout": "2s"},
                                      "log": {"level": "debug"}})
        proc = subprocess.Popen([ctl_path(), "-s", d.unix_socket, "-k", d.key_path,
                                 "feedback", "follow"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctl_env())
        try:
            d.wait_for_log(lambda f: f.get("msg") == "request" and
                           f.get("path") == "/v1/feedback")
            time.sleep(0.2)         # the long-poll is waiting now
            self.assertIsNone(proc.poll())
            started = time.monotonic()
            self.assertEqual(d.stop(), 0)
            self.assertLess(time.monotonic() - started, 5)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual((proc.returncode, out), (3, b""))
        self.assertTrue(err.startswith(b"pushrelayctl: cannot reach pushrelayd at %s: "
                                       % d.unix_socket.encode()), err)
        self.assertEqual(err.count(b"\n"), 1, err)


if __name__ == "__main__":
    harness.main()
