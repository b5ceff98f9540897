"""What several integration tests (and the benchmarks) build the same way.

harness.py runs pushrelayd and speaks TAP; mockctl.py runs the mock APNs and FCM. This
file joins them: the mocks as the tests configure them and the daemon's sections for
them, room events and the notifications the router makes of them (docs/events.md,
src/route/notify_text.c, src/provider/payload.c), pushes and what the mocks recorded of them,
a real redis-server with a small RESP client, Ably webhook signatures, and
NotificationCase: one daemon per class with a mock APNs and a mock FCM, whose tests say
what every device is to receive and check() that it received exactly that.
"""

import base64
import ctypes
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness
import mockctl

TEAM = "TEAM123456"
KEY_ID = "ABC123DEFG"
APP = "com.example.chat"            # the [apns] section, its devices' app_id and topic
PROJECT = "example-project"         # the [fcm] section, its devices' app_id, the project
EMAIL = "pushrelay@example-project.iam.gserviceaccount.com"
FCM_SEND_PATH = "/v1/projects/%s/messages:send" % PROJECT
MAX_ATTEMPTS = 3
DRY_RUN = "dry run: logged, not sent"
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STATES = ("queued", "sending", "retrying", "sent", "failed", "token_removed")
SETTLE = 0.3                        # quiet time after the last expected notification
APNS_HEADERS = ("apns-topic", "apns-push-type", "apns-priority", "apns-collapse-id",
                "apns-expiration")
ABLY_KEY, ABLY_SECRET = "app.key1", "secret1"


# ---- the mocks and the daemon's sections for them -------------------------------------

def apns_mock_args(certs):
    """mock_apns's arguments to take KEY_ID/TEAM's provider tokens for APP."""
    return ["--team-id", TEAM, "--key-id", KEY_ID, "--auth-key", certs.apns_pub,
            "--topic", APP]


def fcm_mock_args(certs):
    """mock_fcm's arguments to serve PROJECT and EMAIL's OAuth tokens."""
    return ["--project-id", PROJECT, "--service-account-key", certs.fcm_pub,
            "--client-email", EMAIL]


def apns_mock(certs, *extra, **options):
    """A started mock APNs taking KEY_ID/TEAM's provider tokens for APP; extra: more
    arguments, options: mockctl.Mock's (record, log_path)."""
    return mockctl.Mock("apns", certs, *apns_mock_args(certs), *extra, **options).start()


def fcm_mock(certs, *extra, **options):
    """A started mock FCM for PROJECT, serving the send and the OAuth token endpoints."""
    return mockctl.Mock("fcm", certs, *fcm_mock_args(certs), *extra, **options).start()


def delivery_config(**options):
    """The [delivery] section of the tests: quick retries, MAX_ATTEMPTS attempts."""
    section = {"retry_initial": "100ms", "retry_max": "500ms",
               "max_attempts": str(MAX_ATTEMPTS)}
    section.update(options)
    return section


def apns_section(certs, production_url, sandbox_url=None, **options):
    """{'apns "APP"': section} with TEAM's key, both environments at these URLs."""
    section = {"key_file": certs.apns_key, "key_id": KEY_ID, "team_id": TEAM,
               "production_url": production_url,
               "sandbox_url": sandbox_url if sandbox_url is not None else production_url,
               "ca_file": certs.ca}
    section.update(options)
    return {'apns "%s"' % APP: section}


def fcm_account(certs, path, token_uri):
    """Write PROJECT's service account file (EMAIL, tokens from token_uri) to path."""
    return mockctl.write_service_account(path, certs, EMAIL, token_uri, PROJECT)


def fcm_section(certs, account, url, **options):
    """{'fcm "PROJECT"': section} sending to url with the service account file."""
    section = {"service_account_file": account, "url": url, "ca_file": certs.ca}
    section.update(options)
    return {'fcm "%s"' % PROJECT: section}


def stop_all(daemon, mocks):
    """Clean up the daemon (which checks its own exit) and stop the mocks; the problems
    found, as text, for the caller to raise once everything else is stopped too."""
    problems = []
    if daemon is not None:
        try:
            daemon.cleanup()
        except AssertionError as e:
            problems.append(str(e))
    for mock in mocks:
        if mock is not None:
            status = mock.stop()
            if status != 0:
                problems.append("mock_%s exited with %s; log:\n%s"
                                % (mock.kind, status, mock.log_text()))
    return problems


def apns_h2load_rate(mock, certs, token, body, n, connections, streams, tmp):
    """Requests per second of h2load sending n APNs requests of the daemon's shape
    (headers, a valid provider token, this body) to the mock: the benchmarks' yardstick."""
    jwt = mockctl.es256_jwt(certs.apns_key, KEY_ID, TEAM)
    data = os.path.join(tmp, "body.json")
    with open(data, "w") as f:
        f.write(body)
    cmd = ["h2load", "-n", str(n), "-c", str(connections), "-m", str(streams),
           "-d", data,
           "-H", "apns-topic: " + APP, "-H", "apns-push-type: alert",
           "-H", "apns-priority: 10", "-H", "authorization: bearer " + jwt,
           "-H", "content-type: application/json",
           "https://127.0.0.1:%d/3/device/%s" % (mock.h2_port, token)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("finished in"):
            # "finished in 1.23s, 162000.00 req/s, 12.3MB/s"
            return float(line.split(",")[1].split()[0])
    raise SystemExit("cannot read h2load's output:\n" + out)


# ---- pushes and what the mocks recorded ----------------------------------------------------

def wait_push_finished(test, daemon, push_id, timeout=10.0, since=0):
    """Poll GET /v1/push/{id} (200 each time) until finished_at is set; the final answer.
    Fails test after timeout, with the daemon's log from since."""
    deadline = time.monotonic() + timeout
    while True:
        st, _, body, raw = daemon.request("GET", "/v1/push/" + push_id)
        test.assertEqual(st, 200, raw)
        if body["finished_at"] is not None:
            return body
        if time.monotonic() > deadline:
            test.fail("push %s not finished after %.0f s: %s\nlog:\n%s"
                      % (push_id, timeout, json.dumps(body), daemon.log_text(since)))
        time.sleep(0.02)


def apns_records(mock, token):
    """The requests a mock APNs recorded for a device token."""
    path = "/3/device/" + token
    return [r for r in mock.requests() if r["path"] == path]


def fcm_records(mock, token):
    """The send requests a mock FCM recorded for a registration token."""
    return [r for r in mock.requests() if record_token(r) == token]


def record_token(record):
    """The device token a mock record was sent to, or None (not a notification)."""
    if record["path"].startswith("/3/device/"):
        return record["path"][len("/3/device/"):]
    if record["path"] == FCM_SEND_PATH:
        try:
            return json.loads(record["body"])["message"]["token"]
        except (ValueError, KeyError, TypeError):
            return None
    return None


def record_message_id(record):
    """data.message_id of a notification record."""
    body = json.loads(record["body"])
    if record["path"] == FCM_SEND_PATH:
        return body["message"]["data"]["message_id"]
    return body["message_id"]


# ---- room events (docs/events.md); room None: no "room", as on a room's channel ----------

def _event(kind, room, **fields):
    event = {"type": kind}
    if room is not None:
        event["room"] = room
    event.update(fields)
    return event


def message(room, mid, sender, text, **extra):
    return _event("message", room, id=mid, client_id=sender, text=text, **extra)


def presence(kind, room, client, connection=None):
    """presence.enter, .leave or .update of a client, on a connection if given."""
    event = _event("presence." + kind, room, client_id=client)
    if connection is not None:
        event["connection_id"] = connection
    return event


def enter(room, client, connection=None):
    return presence("enter", room, client, connection)


def leave(room, client, connection=None):
    return presence("leave", room, client, connection)


def sync(room, present):
    return _event("presence.sync", room, present=present)


def member_join(room, client):
    return _event("member.join", room, client_id=client)


def member_leave(room, client):
    return _event("member.leave", room, client_id=client)


def read(room, client, up_to):
    return _event("read", room, client_id=client, up_to=up_to)


def delete(room, mid):
    return _event("message.delete", room, id=mid)


def update(room, mid, text):
    return _event("message.update", room, id=mid, text=text)


# ---- what the router makes of a message ------------------------------------------------

def collapse_id_of(room, mid):
    """notify_collapse_id(): "m-" and the first 16 bytes of SHA-256(room NUL id), in
    base64url without padding."""
    digest = hashlib.sha256(room.encode() + b"\0" + mid.encode()).digest()
    return "m-" + base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def note(room, mid, sender, text, badge, count=1, room_name=None, sender_name=None,
         title=None, body=None, data=None, apns=None, fcm=None, collapse_id=None):
    """The notification src/route/notify_text.c builds for a message (the latest, when
    coalesced). collapse_id: the APNs request's apns-collapse-id when an override sets
    it; by default the message's own (collapse_id_of)."""
    shown = sender_name if sender_name is not None else sender
    default_body = "%s: %s" % (shown, text)
    if count > 1:
        default_body = "%d new messages: %s" % (count, default_body)
    n = {"title": title if title is not None else room_name if room_name is not None
         else sender_name if sender_name is not None else room,
         "body": body if body is not None else default_body,
         "room": room, "badge": badge,
         "data": {"room": room, "message_id": mid, "sender": sender, "count": str(count)},
         "apns": apns, "fcm": fcm,
         "collapse_id": collapse_id if collapse_id is not None else collapse_id_of(room, mid),
         "own_collapse_id": collapse_id_of(room, mid)}
    n["data"].update(data or {})
    return n


def merge(dst, src):
    """The payload merge of src/provider/payload.c: objects recursively, null deletes."""
    for key, value in src.items():
        if value is None:
            dst.pop(key, None)
        elif isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge(dst[key], value)
        else:
            dst[key] = value


def apns_expected(n):
    """The APNs request (body and the headers that matter) for a note."""
    body = {"aps": {"alert": {"title": n["title"], "body": n["body"]}, "badge": n["badge"],
                    "thread-id": n["room"]}}
    body.update(n["data"])
    if n["apns"] and "payload" in n["apns"]:
        merge(body, n["apns"]["payload"])
    headers = {"apns-topic": APP, "apns-push-type": "alert", "apns-priority": "10"}
    if n["collapse_id"] is not None:
        headers["apns-collapse-id"] = n["collapse_id"]
    return {"body": body, "headers": headers}


def fcm_expected(n, token):
    """The FCM request body for a note."""
    msg = {"token": token,
           "notification": {"title": n["title"], "body": n["body"]},
           "data": n["data"],
           "android": {"priority": "HIGH", "collapse_key": n["own_collapse_id"],
                       "notification": {"tag": n["room"], "notification_count": n["badge"]}},
           "apns": {"headers": {"apns-priority": "10",
                                "apns-collapse-id": n["own_collapse_id"]},
                    "payload": {"aps": {"badge": n["badge"], "thread-id": n["room"]}}}}
    if n["fcm"]:
        merge(msg, n["fcm"])
    return {"body": {"message": msg}}


def canonical(value):
    return json.dumps(value, sort_keys=True)


# ---- Ably webhooks -----------------------------------------------------------------------

def sign(body, secret=ABLY_SECRET):
    """X-Ably-Signature: base64 of HMAC-SHA256 of the raw body with the key's secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def write_ably_keys(path, header=""):
    """An Ably keys file (mode 0600) holding ABLY_KEY and its secret, after header."""
    with open(path, "w") as f:
        f.write("%s%s:%s\n" % (header, ABLY_KEY, ABLY_SECRET))
    os.chmod(path, 0o600)
    return path


# ---- a real redis-server and a small RESP client -------------------------------------

class RedisError(Exception):
    pass


class Redis:
    """A blocking RESP2 client: command() and pipeline(), replies as str/int/list/None."""

    def __init__(self, port, password=None, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        if password is not None:
            self.command("AUTH", password)

    def close(self):
        self.file.close()
        self.sock.close()

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, int):
                a = str(a)
            if isinstance(a, str):
                a = a.encode("utf-8")
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _reply(self):
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode("utf-8")
        if kind == b"-":
            return RedisError(rest.decode("utf-8"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return self.file.read(n + 2)[:-2].decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError("bad reply %r" % line)

    def command(self, *args):
        [reply] = self.pipeline([args])
        return reply

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self._encode(c) for c in commands))
        replies = [self._reply() for _ in commands]
        for r in replies:
            if isinstance(r, RedisError):
                raise r
        return replies


def die_with_parent():
    """In the child: get SIGKILL when the parent dies, whatever the reason."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class RedisServer:
    """redis-server on a free loopback port, in directory (by default a temporary
    directory of its own, removed by stop()); no persistence unless appendonly (an
    append-only file there, which a start on the same directory reads back)."""

    def __init__(self, password=None, directory=None, appendonly=False):
        self.password = password
        self.appendonly = appendonly
        self.own_dir = directory is None
        self.dir = tempfile.mkdtemp(prefix="pushrelay-redis-") if directory is None \
            else directory
        os.makedirs(self.dir, exist_ok=True)
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self.port = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self, port=None):
        """Start on a free port, or on port (again, after stop(remove=False))."""
        for _ in range(3 if port is None else 1):
            self.port = port or harness.free_port()
            args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                    "--dir", self.dir,
                    "--daemonize", "no"]
            if self.password is not None:
                args += ["--requirepass", self.password]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=log, preexec_fn=die_with_parent)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    c = self.client()
                    c.command("PING")
                    c.close()
                    return self
                except (OSError, RedisError):
                    time.sleep(0.02)
            self.stop(remove=False)     # the port was taken meanwhile? try another
        raise RuntimeError("redis-server did not start:\n" + self.log_text())

    def client(self):
        return Redis(self.port, self.password)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, remove=True):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if remove and self.own_dir and not os.environ.get("PUSHRELAY_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- a daemon with mocks, and what each device is to receive -------------------------------

class NotificationCase(harness.DaemonTestCase):
    """One daemon per class with a mock APNs (production and sandbox) and a mock FCM.

    certs, tmp: the module's certificates and temporary directory (mockctl.module_certs),
    set by the test module before the class starts; config(): the class's configuration
    over base_config() (coalescing and grace off); settle: how long to wait after the
    last expected notification before checking that nothing else came; join_status:
    the answers that PUT of a membership may give.
    """

    certs = None
    tmp = None
    settle = SETTLE
    join_status = (201,)

    @classmethod
    def config(cls):
        return {}

    @classmethod
    def setUpClass(cls):
        cls.apns = cls.fcm = cls.daemon = None
        try:
            cls._start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _start(cls):
        cls.start_mocks()
        cls.daemon = cls.make_daemon()
        cls.start_and_wait(cls.daemon)

    @classmethod
    def start_mocks(cls):
        cls.apns = apns_mock(cls.certs)
        cls.fcm = fcm_mock(cls.certs)
        cls.account = fcm_account(cls.certs, os.path.join(cls.tmp, "sa-%s.json" % cls.__name__),
                                  cls.fcm.url("/token"))

    @classmethod
    def base_config(cls):
        config = {"store": {"synchronous": "normal"}, "delivery": delivery_config()}
        config.update(apns_section(cls.certs, cls.apns.url("")))
        config.update(fcm_section(cls.certs, cls.account, cls.fcm.url("")))
        config["rooms"] = {"coalesce_window": "0", "presence_grace": "0"}
        return config

    @classmethod
    def make_daemon(cls, overrides=None):
        """A daemon (not started) on the class's configuration plus overrides."""
        config = harness.merge_config(cls.base_config(), cls.config())
        if overrides:
            config = harness.merge_config(config, overrides)
        return harness.Daemon(config=config)

    @classmethod
    def start_and_wait(cls, daemon):
        """Start a daemon of the class and wait until it is ready for the tests."""
        daemon.start()

    @classmethod
    def tearDownClass(cls):
        problems = cls.stop_all()
        if problems:
            raise AssertionError("\n".join(problems))

    @classmethod
    def stop_all(cls):
        """Stop the daemon and the mocks; the problems found."""
        return stop_all(cls.daemon, (cls.apns, cls.fcm))

    def setUp(self):
        for mock in (self.apns, self.fcm):
            mock.clear_rules()
            mock.clear_requests()
        if not self.daemon.running():
            self.start_and_wait(self.daemon)
        self.log_start = self.daemon.log_offset()
        self.u = harness.uid()
        self.devices = {}           # device_id -> stored device, every device of the test
        self.by_client = {}         # client_id -> [stored device]
        self.expected = {}          # device_id -> [expected request]

    def id_(self, name):
        """A name unique to this test."""
        return "%s-%s" % (name, self.u)

    # -- the API --

    def register(self, client, platform, daemon=None, token=None, track=True):
        """Register a new device of a platform for client (on daemon); returns it.
        track: the device is one of the test's, whose notifications check() compares."""
        daemon = daemon or self.daemon
        device_id = "%s-%s-%s" % (client, platform, harness.uid())
        if platform == "apns":
            body = harness.apns_device(client_id=client, app_id=APP, token=token)
        else:
            body = harness.fcm_device(client_id=client, app_id=PROJECT, token=token)
        st, _, stored, raw = daemon.request("PUT", "/v1/devices/" + harness.quote(device_id),
                                            body=body)
        self.assertEqual(st, 201, raw)
        if not track:
            return stored
        self.devices[device_id] = stored
        self.by_client.setdefault(client, []).append(stored)
        self.expected.setdefault(device_id, [])
        return stored

    def join(self, room, *clients, daemon=None):
        daemon = daemon or self.daemon
        for client in clients:
            st, _, _, raw = daemon.request(
                "PUT", "/v1/rooms/%s/members/%s" % (harness.quote(room), harness.quote(client)))
            self.assertIn(st, self.join_status, raw)

    def members(self, room):
        st, _, body, raw = self.daemon.request(
            "GET", "/v1/rooms/%s/members?limit=1000" % harness.quote(room))
        self.assertEqual(st, 200, raw)
        return body["members"]

    def wait_members(self, room, expected, timeout=5.0):
        """Poll the room's members until they are exactly the expected client ids."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.members(room)
            ids = sorted(m["client_id"] for m in got)
            if ids == sorted(expected) or time.monotonic() > deadline:
                self.assertEqual(ids, sorted(expected), "members of %s" % room)
                return got
            time.sleep(0.02)

    # -- the mocks --

    def expect(self, client, n):
        """Every device of client is to get the note n once more."""
        self.assertIn(client, self.by_client, "no devices registered for %s" % client)
        for dev in self.by_client[client]:
            if dev["platform"] == "apns":
                self.expected[dev["device_id"]].append(apns_expected(n))
            else:
                self.expected[dev["device_id"]].append(fcm_expected(n, dev["token"]))

    def records(self):
        """token -> the notification requests the mocks recorded for it."""
        by_token = {}
        for r in self.apns.requests() + self.fcm.requests():
            token = record_token(r)
            if token is not None:
                by_token.setdefault(token, []).append(r)
        return by_token

    def received(self):
        """device_id -> the requests the mocks received for it (this test's devices)."""
        by_token = self.records()
        return {device_id: by_token.get(dev["token"], [])
                for device_id, dev in self.devices.items()}

    def shown(self, device_id, record):
        """What is compared of a received request."""
        dev = self.devices[device_id]
        out = {"body": json.loads(record["body"])}
        if dev["platform"] == "apns":
            out["headers"] = {k: v for k, v in record["headers"].items() if k in APNS_HEADERS}
        return out

    def check(self, until=None, timeout=10.0, daemon=None):
        """Wait for the expected notifications, then for settle (and until, a monotonic
        time), then assert that every device of the test got exactly what was expected,
        answered 200. daemon: the one whose log a failure shows (whole), not the class's."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if all(len(got[d]) >= len(want) for d, want in self.expected.items()):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        time.sleep(self.settle)
        if until is not None and until > time.monotonic():
            time.sleep(until - time.monotonic())
        got = self.received()

        def label(device_id):
            dev = self.devices[device_id]
            return "%s %s %s" % (dev["client_id"], dev["platform"], device_id)

        actual = {label(d): sorted((self.shown(d, r) for r in records), key=canonical)
                  for d, records in got.items()}
        wanted = {label(d): sorted(want, key=canonical) for d, want in self.expected.items()}
        log = self.daemon.log_text(self.log_start) if daemon is None else daemon.log_text()
        self.assertEqual(actual, wanted, "daemon log:\n%s" % log[-6000:])
        for d, records in got.items():
            for r in records:
                self.assertEqual(r["status"], 200, "%s: %r" % (label(d), r))
        return got


# ---- metrics ----------------------------------------------------------------------

_SAMPLE_RE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric(daemon, name, **labels):
    """The value of one sample of GET /metrics, or None if it is not there."""
    st, _, _, raw = daemon.request("GET", "/metrics", key=None)
    if st != 200:
        raise AssertionError("GET /metrics: %d %r" % (st, raw))
    for line in raw.decode("utf-8").splitlines():
        m = _SAMPLE_RE.match(line)
        if m is None or m.group(1) != name:
            continue
        if dict(_LABEL_RE.findall(m.group(2) or "")) == labels:
            return float(m.group(3))
    return None
