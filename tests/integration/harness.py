"""Integration test harness for pushrelayd.

Starts real daemons, each in its own temporary directory and on a free loopback port
(the daemon binds port 0 and logs the port it got), so test files run in parallel
under `make -j2 check`. Runs the calling module's unittest test cases and prints TAP
13 for automake's tap-driver.sh.

Environment (set by the Makefile):
    PUSHRELAYD              absolute path of the daemon binary
    PUSHRELAY_TOP_SRCDIR    the source tree
    PUSHRELAY_TOP_BUILDDIR  the build tree
    PUSHRELAY_KEEP_TMP      if set, temporary directories are kept for inspection
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

READY_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0

_DEFAULT = object()
_SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: ")
_live_daemons = []


def daemon_path():
    """The daemon binary under test."""
    path = os.environ.get("PUSHRELAYD")
    if path:
        return path
    top = os.environ.get("PUSHRELAY_TOP_BUILDDIR", ".")
    return os.path.abspath(os.path.join(top, "src", "pushrelayd"))


def quote(segment):
    """Percent-encode one path segment (str or bytes); '/' is encoded too."""
    return urllib.parse.quote(segment, safe="")


def uid():
    """Eight hex digits to make ids unique to a test."""
    return os.urandom(4).hex()


def free_port():
    """A loopback port that nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- log lines -------------------------------------------------------------------

_FIELD_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line):
    """Parse one text-format (key=value, values with spaces quoted) or JSON log line."""
    line = line.strip()
    if line.startswith("<") and ">" in line[:5]:
        line = line[line.index(">") + 1:]
    if line.startswith("{"):
        try:
            return {k: str(v) for k, v in json.loads(line).items()}
        except ValueError:
            return {}
    fields = {}
    for m in _FIELD_RE.finditer(line):
        value = m.group(2)
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value[1:-1]
        fields.setdefault(m.group(1), value)
    return fields


# ---- time ------------------------------------------------------------------------

TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z$")


def time_to_ms(text):
    """Milliseconds since the epoch of an API time 'YYYY-MM-DDTHH:MM:SS.mmmZ'."""
    m = TIME_RE.match(text)
    if m is None:
        raise ValueError("not an API time: %r" % (text,))
    import calendar
    y, mo, d, h, mi, s, ms = (int(g) for g in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1000 + ms


def now_ms():
    return int(time.time() * 1000)


# ---- HTTP over a unix socket -----------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, path, timeout=REQUEST_TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


# ---- the daemon ------------------------------------------------------------------

class DaemonError(Exception):
    pass


class Daemon:
    """One pushrelayd with its own temporary directory, config, state and log.

    config: {section: {key: value}} merged over the defaults
            ([server] state_dir = TMP/state, [api] listen = 127.0.0.1:0);
            a value of None removes a default; "{tmp}" in a value is the temp dir.
    keys:   if given, these API keys are written to TMP/api-keys (0600) and
            [api] api_key_file points at it; otherwise the daemon generates
            STATE_DIR/api-keys and the first key is read back from it.
    """

    def __init__(self, config=None, keys=None, config_text=None, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="pushrelay-it-")
        self.state_dir = os.path.join(self.tmp, "state")
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.config_path = os.path.join(self.tmp, "pushrelay.conf")
        self.log_path = os.path.join(self.tmp, "daemon.log")
        self.stdout_path = os.path.join(self.tmp, "daemon.stdout")
        self.proc = None
        self.port = None
        self.key = None
        self.overrides = {
            section: {k: (v.replace("{tmp}", self.tmp) if isinstance(v, str) else v)
                      for k, v in options.items()}
            for section, options in (config or {}).items()}
        if keys is not None:
            path = os.path.join(self.tmp, "api-keys")
            self.write_keys(keys, path)
            self.overrides = merge_config(self.overrides, {"api": {"api_key_file": path}})
        self.key_path = self.option("api", "api_key_file") or os.path.join(
            self.state_dir, "api-keys")
        self.db_path = self.option("store", "path") or os.path.join(self.state_dir,
                                                                    "pushrelay.db")
        self.unix_socket = self.option("api", "unix_socket")
        self.write_config(config_text if config_text is not None else self.config_text())
        self._start_offset = 0
        _live_daemons.append(self)

    # -- configuration --

    def option(self, section, key):
        return self.config_dict().get(section, {}).get(key)

    def config_dict(self, overrides=None):
        base = {"server": {"state_dir": self.state_dir},
                "api": {"listen": "127.0.0.1:0"}}
        merged = merge_config(base, self.overrides)
        if overrides:
            merged = merge_config(merged, overrides)
        return merged

    def config_text(self, overrides=None):
        """The INI text of this daemon's config, with optional further overrides."""
        out = []
        for section, options in self.config_dict(overrides).items():
            out.append("[%s]" % section)
            for key, value in options.items():
                out.append("%s = %s" % (key, value))
            out.append("")
        return "\n".join(out)

    def write_config(self, text):
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.config_path)

    @staticmethod
    def write_keys(keys, path):
        fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# API keys, one per line\n")
            for k in keys:
                f.write(k + "\n")
        os.rename(path + ".new", path)

    def read_keys(self):
        """The non-comment, non-empty lines of the API key file."""
        with open(self.key_path) as f:
            return [ln.strip() for ln in f
                    if ln.strip() and not ln.strip().startswith("#")]

    # -- process control --

    def env(self):
        env = dict(os.environ)
        for name in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "STATE_DIRECTORY", "LISTEN_FDS",
                     "LISTEN_PID"):
            env.pop(name, None)
        return env

    def start(self, wait=True, args=None):
        """Start the daemon; with wait, until it logs msg=ready (else DaemonError)."""
        if self.running():
            raise DaemonError("already running")
        self._start_offset = self._log_size()
        log = open(self.log_path, "ab")
        out = open(self.stdout_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [daemon_path(), "-c", self.config_path] + (args or []),
                stdin=subprocess.DEVNULL, stdout=out, stderr=log, cwd=self.tmp,
                env=self.env())
        finally:
            log.close()
            out.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            port = None
            ready = False
            for line in self.log_lines(since=self._start_offset):
                f = parse_log_line(line)
                if f.get("msg") == "listening" and port is None:
                    m = re.match(r"^127\.0\.0\.1:(\d+)$", f.get("address", ""))
                    if m:
                        port = int(m.group(1))
                if f.get("msg") == "ready":
                    ready = True
            if ready:
                if port is None:
                    raise DaemonError("ready but no 'msg=listening address=127.0.0.1:PORT' "
                                      "line:\n" + self.log_text())
                self.port = port
                break
            if self.proc.poll() is not None:
                raise DaemonError("pushrelayd exited with %s before ready:\n%s"
                                  % (self.proc.returncode, self.log_text()))
            if time.monotonic() > deadline:
                self.kill9()
                raise DaemonError("pushrelayd not ready after %.0f s:\n%s"
                                  % (timeout, self.log_text()))
            time.sleep(0.01)
        if self.key is None:
            keys = self.read_keys()
            if not keys:
                raise DaemonError("no key in %s" % self.key_path)
            self.key = keys[0]

    def wait_exit(self, timeout=10.0):
        """Wait for the process to end; its exit status (negative: killed by signal)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise DaemonError("pushrelayd did not exit within %.1f s:\n%s"
                              % (timeout, self.log_text()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Send sig and wait for the exit; returns the exit status."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def kill9(self):
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def restart(self):
        """Stop (SIGTERM) if running, then start again on the same config and state."""
        if self.running():
            code = self.stop()
            if code != 0:
                raise DaemonError("exit status %s on SIGTERM" % code)
        return self.start()

    def reload(self, new_config_text=None, timeout=10.0):
        """Optionally rewrite the config, send SIGHUP, wait for the outcome line.

        Returns the parsed log line (msg is "configuration reloaded" or "reload refused").
        """
        if new_config_text is not None:
            self.write_config(new_config_text)
        offset = self._log_size()
        self.proc.send_signal(signal.SIGHUP)
        return self.wait_for_log(
            lambda f: f.get("msg") in ("configuration reloaded", "reload refused"),
            since=offset, timeout=timeout)

    def cleanup(self):
        """Kill the daemon, remove its directory; fail if a sanitizer reported anything."""
        self.kill9()
        if self in _live_daemons:
            _live_daemons.remove(self)
        report = self.sanitizer_report()
        if not os.environ.get("PUSHRELAY_KEEP_TMP") and report is None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if report is not None:
            raise AssertionError("sanitizer report in %s:\n%s" % (self.log_path, report))

    def sanitizer_report(self):
        """The first AddressSanitizer/LeakSanitizer/UBSan report in the log, or None."""
        text = self.log_text()
        m = _SANITIZER_RE.search(text)
        if m is None:
            return None
        return text[max(0, m.start() - 200):m.start() + 3000]

    # -- the log --

    def _log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_bytes(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read()
        except OSError:
            return b""

    def log_text(self, since=0):
        return self.log_bytes(since).decode("utf-8", "replace")

    def log_lines(self, since=0):
        """Complete lines of the daemon's stderr (all starts), or since a byte offset."""
        data = self.log_text(since)
        lines = data.split("\n")
        return [ln for ln in lines[:-1]]

    def log_offset(self):
        """Remember a point in the log, for log_lines(since=...)."""
        return self._log_size()

    def find_log(self, predicate, since=0):
        """Parsed log lines for which predicate(fields) is true."""
        return [f for f in (parse_log_line(ln) for ln in self.log_lines(since)) if predicate(f)]

    def wait_for_log(self, predicate, since=0, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines(since):
                f = parse_log_line(line)
                if predicate(f):
                    f["_line"] = line
                    return f
            if time.monotonic() > deadline:
                raise DaemonError("log line not seen within %.0f s:\n%s"
                                  % (timeout, self.log_text(since)))
            if not self.running():
                raise DaemonError("pushrelayd exited (%s) while waiting for a log line:\n%s"
                                  % (self.proc.returncode, self.log_text(since)))
            time.sleep(0.01)

    def secret_in_log(self, secret):
        """True if the secret (str or bytes) appears anywhere in the daemon's log."""
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        data = self.log_bytes() + self._stdout_bytes()
        return secret in data

    def _stdout_bytes(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    # -- HTTP --

    def connection(self, unix=False, timeout=REQUEST_TIMEOUT):
        if unix:
            return UnixHTTPConnection(self.unix_socket, timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, key=_DEFAULT, raw_body=None,
                unix=False, timeout=REQUEST_TIMEOUT):
        """One request on a fresh connection.

        body: a JSON value, sent with Content-Type: application/json; raw_body: bytes
        sent as is (also with that content type unless headers say otherwise);
        headers: extra headers, a value of None removes a header; key: the API key
        (default: the daemon's key; None: no Authorization header).
        Returns (status, headers with lower-case names, parsed JSON or None, raw bytes).
        """
        hdrs = {}
        if key is _DEFAULT:
            key = self.key
        if key is not None:
            hdrs["Authorization"] = "Bearer " + key
        data = None
        if raw_body is not None:
            data = raw_body
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        for name, value in (headers or {}).items():
            for existing in [h for h in hdrs if h.lower() == name.lower()]:
                del hdrs[existing]
            if value is not None:
                hdrs[name] = value
        conn = self.connection(unix=unix, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            rh = {}
            for name, value in resp.getheaders():
                name = name.lower()
                rh[name] = rh[name] + ", " + value if name in rh else value
            status = resp.status
        finally:
            conn.close()
        parsed = None
        if raw:
            try:
                parsed = json.loads(raw.decode("utf-8"))
            except ValueError:
                parsed = None
        return status, rh, parsed, raw

    # -- the database --

    def query(self, sql, params=()):
        """Rows (as dicts) of a query on the store, opened read-only."""
        conn = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(self.db_path),
                               uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def snapshot(self):
        """Every row of the registry's tables, to prove that a request changed nothing."""
        return {
            "devices": self.query("SELECT * FROM devices ORDER BY device_id"),
            "memberships": self.query(
                "SELECT * FROM memberships ORDER BY room_id, client_id"),
        }


def merge_config(base, overrides):
    merged = {s: dict(o) for s, o in base.items()}
    for section, options in overrides.items():
        target = merged.setdefault(section, {})
        for key, value in options.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return merged


@atexit.register
def _kill_leftovers():
    for d in list(_live_daemons):
        try:
            d.cleanup()
        except Exception:
            pass


def run_pushrelayd(args, timeout=10.0):
    """Run the binary to completion: (exit status, stdout, stderr) as text."""
    p = subprocess.run([daemon_path()] + args, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


# ---- a base class for tests ------------------------------------------------------

class DaemonTestCase(unittest.TestCase):
    maxDiff = None

    def start_daemon(self, config=None, keys=None, wait=True):
        """A started daemon, killed and cleaned up after the test."""
        d = Daemon(config=config, keys=keys)
        self.addCleanup(d.cleanup)
        d.start(wait=wait)
        return d

    def new_daemon(self, config=None, keys=None, config_text=None):
        """A daemon not started yet, cleaned up after the test."""
        d = Daemon(config=config, keys=keys, config_text=config_text)
        self.addCleanup(d.cleanup)
        return d

    def assertTime(self, value, near_ms=None, slack_ms=60000):
        """value is an API time (RFC 3339 UTC with ms); optionally close to near_ms."""
        self.assertIsInstance(value, str)
        self.assertRegex(value, TIME_RE)
        if near_ms is not None:
            self.assertLessEqual(abs(time_to_ms(value) - near_ms), slack_ms,
                                 "time %s too far from now" % value)

    def assertErrorBody(self, result, status, code, message=_DEFAULT, field=_DEFAULT):
        """The response is status with exactly {"error": {code, message[, field]}}.

        message/field: the exact expected value; left out: message must be a non-empty
        string and field absent (None: field must be absent).
        """
        st, headers, body, raw = result
        self.assertEqual(st, status, "status; body %r" % raw)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"),
                        "error content type %r" % headers.get("content-type"))
        self.assertIsInstance(body, dict, "error body %r" % raw)
        self.assertEqual(set(body), {"error"}, "error body %r" % raw)
        err = body["error"]
        self.assertIsInstance(err, dict)
        expected = {"code": code}
        if message is _DEFAULT:
            self.assertIsInstance(err.get("message"), str, "message in %r" % raw)
            self.assertTrue(err.get("message"), "empty message in %r" % raw)
            expected["message"] = err.get("message")
        else:
            expected["message"] = message
        if field is not _DEFAULT and field is not None:
            expected["field"] = field
        self.assertEqual(err, expected)

    def assertUnauthorized(self, result):
        """401, the Bearer challenge, and an unauthorized error body."""
        self.assertEqual(result[1].get("www-authenticate"), 'Bearer realm="pushrelay"',
                         "WWW-Authenticate in %r" % (result[1],))
        self.assertErrorBody(result, 401, "unauthorized")


# ---- TAP output ------------------------------------------------------------------

def _test_name(test):
    cls = type(test).__name__
    method = getattr(test, "_testMethodName", None)
    return "%s.%s" % (cls, method) if method else str(test)


def _tap_comment(text):
    return "\n".join("# " + ln for ln in text.rstrip("\n").split("\n"))


class TapResult(unittest.TestResult):
    """Prints one TAP line per test as it ends; subtest failures fail their test."""

    def __init__(self, out):
        super().__init__()
        self.out = out
        self.number = 0
        self.reported = set()
        self.fixture_errors = []
        self.fixture_skips = []
        self.any_failed = False
        self._problems = []
        self._skip = None

    def _emit(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def startTest(self, test):
        super().startTest(test)
        self._problems = []
        self._skip = None
        self._start = time.monotonic()

    def _fmt(self, err, test):
        return self._exc_info_to_string(err, test)

    def addError(self, test, err):
        super().addError(test, err)
        if not isinstance(test, unittest.TestCase):
            # setUpClass / tearDownClass / module fixtures
            self.fixture_errors.append((str(test), self._fmt(err, test)))
            self.any_failed = True
            return
        self._problems.append("ERROR\n" + self._fmt(err, test))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._problems.append("FAIL\n" + self._fmt(err, test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._problems.append("FAIL in %s\n%s" % (subtest._subDescription(),
                                                      self._fmt(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if not isinstance(test, unittest.TestCase):
            self.fixture_skips.append((str(test), reason))
            return
        self._skip = reason

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._problems.append("unexpected success")

    def stopTest(self, test):
        super().stopTest(test)
        name = _test_name(test)
        if name in self.reported:
            return
        self.reported.add(name)
        self.number += 1
        took = time.monotonic() - self._start
        if self._problems:
            self.any_failed = True
            self._emit("not ok %d - %s" % (self.number, name))
            self._emit(_tap_comment("\n".join(self._problems)))
        elif self._skip is not None:
            self._emit("ok %d - %s # SKIP %s" % (self.number, name, self._skip))
        else:
            self._emit("ok %d - %s" % (self.number, name))
        self._emit("# %s took %.2f s" % (name, took))


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t


def main():
    """Run the calling module's test cases, print TAP 13, exit 0 if all passed."""
    module = sys.modules["__main__"]
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    tests = list(_flatten(suite))
    out = sys.stdout
    out.write("1..%d\n" % len(tests))
    out.flush()
    binary = daemon_path()
    if not os.access(binary, os.X_OK):
        for i, t in enumerate(tests, 1):
            out.write("not ok %d - %s\n# no executable pushrelayd at %s\n"
                      % (i, _test_name(t), binary))
        sys.exit(1)
    result = TapResult(out)
    suite.run(result)
    # Tests that never ran (a class fixture failed) still get their line.
    for t in tests:
        name = _test_name(t)
        if name in result.reported:
            continue
        result.number += 1
        skip = [r for where, r in result.fixture_skips if type(t).__name__ in where]
        if skip and not result.fixture_errors:
            out.write("ok %d - %s # SKIP %s\n" % (result.number, name, skip[0]))
        else:
            result.any_failed = True
            out.write("not ok %d - %s # not run\n" % (result.number, name))
    for where, text in result.fixture_errors:
        out.write(_tap_comment("fixture %s:\n%s" % (where, text)) + "\n")
    out.flush()
    _kill_leftovers()
    sys.exit(1 if result.any_failed else 0)


# ---- sample records --------------------------------------------------------------

def apns_token():
    """A fresh 64-hex-digit APNs token (lower case)."""
    return os.urandom(32).hex()


def fcm_token():
    """A fresh FCM-like registration token."""
    return "f" + os.urandom(24).hex() + ":APA91b" + os.urandom(40).hex()


def apns_device(client_id="alice", token=None, **extra):
    body = {"client_id": client_id, "platform": "apns", "token": token or apns_token(),
            "app_id": "com.example.chat"}
    body.update(extra)
    return body


def fcm_device(client_id="alice", token=None, **extra):
    body = {"client_id": client_id, "platform": "fcm", "token": token or fcm_token(),
            "app_id": "example-chat"}
    body.update(extra)
    return body
