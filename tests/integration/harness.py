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
    PUSHRELAY_TEST_STORE    the store backend the daemons get: sqlite (the default) or
                            postgresql, on a throwaway cluster (PostgresServer) that the
                            test file starts on first use; use_store() sets it
"""

import atexit
import glob
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


# ---- the store backend, and a throwaway PostgreSQL -----------------------------------

STORE_ENV = "PUSHRELAY_TEST_STORE"


def store_backend():
    """The backend this test file's daemons get: "sqlite" or "postgresql"."""
    return os.environ.get(STORE_ENV) or "sqlite"


def use_store(backend):
    """Give this file's daemons the backend (a file's *_postgresql.py variant says so)."""
    os.environ[STORE_ENV] = backend


def pg_bindir():
    """Where initdb and postgres are: on PATH, else the newest Debian version's bin."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                  key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if dirs:
        return os.path.dirname(dirs[-1])
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    raise RuntimeError("PostgreSQL's initdb not found: apt-get install postgresql")


def _pg_literal(value):
    """A value as an SQL literal, for the tests' own queries (never the daemon's)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "'\\x%s'::bytea" % value.hex()
    return "'" + str(value).replace("'", "''") + "'"


def _pg_bind(sql, params):
    """Put params in place of the ?s of sql, as sqlite3 would bind them."""
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise ValueError("%d parameters for %d placeholders" % (len(params), len(parts) - 1))
    out = [parts[0]]
    for value, rest in zip(params, parts[1:]):
        out.append(_pg_literal(value))
        out.append(rest)
    return "".join(out)


class PostgresServer:
    """A throwaway PostgreSQL cluster: initdb into a temporary directory, then postgres
    on a free loopback port with its socket in the same directory, trust auth, and the
    superuser "postgres". PostgreSQL refuses to run as root, so as root (CI) initdb and
    postgres run as the postgres user (setpriv), the directory theirs; else as the
    caller. Each daemon gets a database of its own (create_database)."""

    def __init__(self):
        self.bindir = pg_bindir()
        base = tempfile.gettempdir()
        self.as_root = os.geteuid() == 0
        if self.as_root and not _traversable_by_all(base):
            base = "/tmp"
        self.dir = tempfile.mkdtemp(prefix="pushrelay-pg-", dir=base)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.proc = None
        self.port = None
        if self.as_root:
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o755)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                   "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])

    def _as_owner(self, args):
        if not self.as_root:
            return args
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] + args

    def _run(self, args):
        p = subprocess.run(self._as_owner(args), stdin=subprocess.DEVNULL,
                           capture_output=True, cwd=self.dir)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (
                os.path.basename(args[0]), p.returncode,
                p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")))
        return p

    def start(self, port=None):
        """Start on a free port (or on port again, after stop()); wait until it answers."""
        for _ in range(3 if port is None else 1):
            self.port = port or free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self._as_owner([
                    os.path.join(self.bindir, "postgres"), "-D", self.data,
                    "-p", str(self.port), "-k", self.dir,
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                    "-c", "full_page_writes=off", "-c", "shared_buffers=16MB",
                    "-c", "max_connections=60", "-c", "logging_collector=off"]),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._answers():
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError("postgres did not start:\n" + self.log_text())

    def _answers(self):
        p = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-h", self.dir,
                            "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                            "-c", "SELECT 1"], stdin=subprocess.DEVNULL,
                           capture_output=True)
        return p.returncode == 0

    def stop(self):
        """Stop (a fast shutdown: clients cut, what was committed kept)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def cleanup(self):
        self.stop()
        if not os.environ.get("PUSHRELAY_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def conninfo(self, dbname):
        """The libpq connection string of a database, over the unix socket."""
        return "host=%s port=%d user=postgres dbname=%s" % (self.dir, self.port, dbname)

    def tcp_conninfo(self, dbname):
        """The same over TCP on 127.0.0.1."""
        return "host=127.0.0.1 port=%d user=postgres dbname=%s" % (self.port, dbname)

    def create_database(self, name=None):
        name = name or "pushrelay_" + uid()
        self.psql("postgres", "CREATE DATABASE %s" % name)
        return name

    def psql(self, dbname, sql):
        """Run SQL (with ON_ERROR_STOP); its unaligned, tuples-only output."""
        p = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port),
                            "-U", "postgres", "-d", dbname, "-c", sql],
                           stdin=subprocess.DEVNULL, capture_output=True)
        if p.returncode != 0:
            raise RuntimeError("psql: %s\n%s" % (sql, p.stderr.decode("utf-8", "replace")))
        return p.stdout.decode("utf-8")

    def query(self, dbname, sql, params=()):
        """Rows (as dicts, integers as int) of a query with sqlite3's ? parameters."""
        text = self.psql(dbname, "SELECT coalesce(json_agg(q), '[]'::json) FROM (%s) q"
                         % _pg_bind(sql, params))
        return json.loads(text)

    def execute(self, dbname, sql, params=()):
        self.psql(dbname, _pg_bind(sql, params))


def _traversable_by_all(path):
    """Can another user reach files under path (every directory up to / has o+x)?"""
    path = os.path.abspath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


_postgres = None
_postgres_failed = None


def postgres():
    """This test file's PostgreSQL server, started on first use, removed at exit; if
    it did not start, every later call fails at once with the same error."""
    global _postgres, _postgres_failed
    if _postgres_failed is not None:
        raise RuntimeError(_postgres_failed)
    if _postgres is None:
        server = None
        try:
            server = PostgresServer()
            server.start()
        except Exception as e:
            if server is not None:
                server.cleanup()
            _postgres_failed = "PostgreSQL did not start: %s" % e
            raise
        _postgres = server
    return _postgres


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
        # The store: the file's backend unless the config names one; on PostgreSQL, a
        # database of this daemon's own.
        self.pg = None
        self.pg_db = None
        store = self.overrides.get("store", {})
        self.store_backend = store.get("backend") or store_backend()
        if self.store_backend == "postgresql" and "postgresql" not in store:
            self.pg = postgres()
            self.pg_db = self.pg.create_database()
            self.overrides = merge_config(self.overrides, {"store": {
                "backend": "postgresql", "postgresql": self.pg.conninfo(self.pg_db)}})
        elif self.store_backend == "postgresql":
            # A database named by the test: queries go there when it is on this
            # file's server.
            self.overrides = merge_config(self.overrides, {"store": {
                "backend": "postgresql"}})
            m = re.search(r"dbname=(\S+)", store["postgresql"])
            if _postgres is not None and m and ("port=%d " % _postgres.port) in (
                    store["postgresql"] + " "):
                self.pg, self.pg_db = _postgres, m.group(1)
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
        """Rows (as dicts) of a query on the store, opened read-only; sqlite3's ?
        parameters on either backend."""
        if self.pg is not None:
            return self.pg.query(self.pg_db, sql, params)
        conn = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(self.db_path),
                               uri=True, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def execute(self, sql, params=()):
        """Change the store as another program would (one transaction)."""
        if self.pg is not None:
            self.pg.execute(self.pg_db, sql, params)
            return
        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()

    def schema_version(self):
        """The store's schema version (SQLite's user_version, PostgreSQL's row)."""
        if self.pg is not None:
            return self.query("SELECT version FROM pushrelay_schema")[0]["version"]
        return self.query("PRAGMA user_version")[0]["user_version"]

    def set_schema_version(self, version):
        """Say the store was written by another version of pushrelayd."""
        if self.pg is not None:
            self.execute("UPDATE pushrelay_schema SET version = ?", (version,))
        else:
            self.execute("PRAGMA user_version = %d" % version)

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
    global _postgres
    for d in list(_live_daemons):
        try:
            d.cleanup()
        except Exception:
            pass
    if _postgres is not None:
        _postgres.cleanup()
        _postgres = None


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
