"""Drive the mock APNs and FCM servers (tests/mocks) from Python 3, stdlib only.

    certs = mockctl.Certs.generate(tmpdir)          # tests/gen-certs.sh
    apns = mockctl.Mock("apns", certs, "--team-id", "TEAM123456", ...).start()
    apns.add_rule(token=tok, status=410, reason="Unregistered", timestamp=1700000000000)
    ... point the daemon at apns.h2_port, trust certs.ca ...
    apns.requests()  ->  [{"seq":1,"path":"/3/device/...","headers":{...},"status":200,...}]
    apns.stop()

Also mints test JWTs with the openssl CLI (Python's stdlib cannot sign): es256_jwt() for
APNs provider tokens, rs256_jwt() / fcm_assertion() for Google OAuth assertions, and writes
service-account JSON files with write_service_account().

As a command:  mockctl.py certs DIR
               mockctl.py start apns|fcm CERTDIR [MOCK ARGS...]   (prints READY, runs)
               mockctl.py es256 KEY.p8 KEY_ID TEAM_ID             (prints a provider token)

Environment: PUSHRELAY_TOP_SRCDIR, PUSHRELAY_TOP_BUILDDIR (set by the Makefile), or
MOCK_APNS / MOCK_FCM for the binaries.
"""

import atexit
import shutil
import tempfile
import base64
import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request

READY_TIMEOUT = 10.0
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

_HERE = os.path.dirname(os.path.abspath(__file__))
_live_mocks = set()


def top_srcdir():
    return os.environ.get("PUSHRELAY_TOP_SRCDIR") or os.path.dirname(os.path.dirname(_HERE))


def top_builddir():
    return os.environ.get("PUSHRELAY_TOP_BUILDDIR") or top_srcdir()


def mock_binary(kind):
    """Path of mock_apns or mock_fcm."""
    override = os.environ.get("MOCK_" + kind.upper())
    if override:
        return override
    return os.path.join(top_builddir(), "tests", "mocks", "mock_" + kind)


# ---- credentials ------------------------------------------------------------------

class Certs:
    """The files tests/gen-certs.sh writes into a directory."""

    def __init__(self, directory):
        self.dir = directory
        self.ca = os.path.join(directory, "ca.pem")
        self.server_cert = os.path.join(directory, "server.pem")
        self.server_key = os.path.join(directory, "server.key")
        self.apns_key = os.path.join(directory, "apns.p8")
        self.apns_pub = os.path.join(directory, "apns.pub.pem")
        self.fcm_key = os.path.join(directory, "fcm-sa.key")
        self.fcm_pub = os.path.join(directory, "fcm-sa.pub.pem")

    @classmethod
    def generate(cls, directory):
        script = os.path.join(top_srcdir(), "tests", "gen-certs.sh")
        subprocess.run(["sh", script, directory], check=True)
        return cls(directory)


def module_certs(prefix):
    """A temp dir and certificates in it for one test module, removed at exit
    (kept when PUSHRELAY_KEEP_TMP is set): returns (certs, tmpdir)."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    if not os.environ.get("PUSHRELAY_KEEP_TMP"):
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return Certs.generate(os.path.join(tmp, "certs")), tmp


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def openssl_sign(key_path, data):
    """SHA-256 signature of data by a PEM private key (DER for EC keys)."""
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=data,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout


def der_to_raw(der, size=32):
    """An ECDSA-Sig-Value (SEQUENCE of INTEGER r, s) as the JWS r||s of 2*size bytes."""
    if der[0] != 0x30:
        raise ValueError("not a DER SEQUENCE")
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("not a DER INTEGER")
        n = der[i + 1]
        value = der[i + 2:i + 2 + n].lstrip(b"\0")
        if len(value) > size:
            raise ValueError("integer too long")
        out += value.rjust(size, b"\0")
        i += 2 + n
    return out


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_decode(jwt):
    """(header, claims, signature bytes, signing input) of a compact JWS."""
    parts = jwt.split(".")
    if len(parts) != 3:
        raise AssertionError("not a compact JWS: %r" % jwt)
    return (json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1])),
            b64url_decode(parts[2]), (parts[0] + "." + parts[1]).encode())


def raw_to_der(sig):
    """A JWS ES256 signature r||s as the DER ECDSA-Sig-Value openssl verifies."""
    def integer(b):
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b
    seq = integer(sig[:32]) + integer(sig[32:])
    return b"\x30" + bytes([len(seq)]) + seq


def openssl_verifies(pub_path, data, signature):
    """Does openssl accept a SHA-256 signature (DER for EC keys) of data?"""
    fd, path = tempfile.mkstemp(prefix="pushrelay-sig-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(signature)
        p = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub_path, "-signature",
                            path], input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        return p.returncode == 0 and b"Verified OK" in p.stdout
    finally:
        os.unlink(path)


def sign_jwt(key_path, header, claims, alg):
    """A compact JWS over JSON header and claims (dicts or already-encoded strings)."""
    def part(x):
        return x if isinstance(x, str) else b64url(json.dumps(x, separators=(",", ":")))
    signing_input = part(header) + "." + part(claims)
    sig = openssl_sign(key_path, signing_input.encode())
    if alg == "ES256":
        sig = der_to_raw(sig)   # "ES256-DER" keeps OpenSSL's DER form
    return signing_input + "." + b64url(sig)


def es256_jwt(key_path, kid, iss, iat=None, der=False, header=None, claims=None):
    """An APNs provider token; der=True keeps the DER signature (a client bug)."""
    h = {"alg": "ES256", "kid": kid} if header is None else header
    c = {"iss": iss, "iat": int(time.time()) if iat is None else iat} if claims is None \
        else claims
    return sign_jwt(key_path, h, c, "ES256-DER" if der else "ES256")


def rs256_jwt(key_path, claims, kid=None, header=None):
    h = {"alg": "RS256", "typ": "JWT"} if header is None else header
    if kid is not None:
        h["kid"] = kid
    return sign_jwt(key_path, h, claims, "RS256")


def fcm_assertion(key_path, client_email, token_uri, iat=None, lifetime=3600,
                  scope=FCM_SCOPE, **extra):
    """A Google OAuth JWT-bearer assertion for the service account."""
    iat = int(time.time()) if iat is None else iat
    claims = {"iss": client_email, "scope": scope, "aud": token_uri, "iat": iat,
              "exp": iat + lifetime}
    claims.update(extra)
    return rs256_jwt(key_path, claims)


def write_service_account(path, certs, client_email, token_uri, project_id,
                          private_key_id="mock-key-1"):
    """A service-account JSON file whose token_uri points at a mock."""
    with open(certs.fcm_key) as f:
        private_key = f.read()
    account = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": private_key_id,
        "private_key": private_key,
        "client_email": client_email,
        "client_id": "100000000000000000000",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
                                + client_email,
        "universe_domain": "googleapis.com",
    }
    with open(path, "w") as f:
        json.dump(account, f, indent=2)
    return path


# ---- a running mock -----------------------------------------------------------------

class MockError(Exception):
    pass


class Mock:
    """One mock_apns or mock_fcm process on random loopback ports."""

    def __init__(self, kind, certs, *args, record=True, log_path=None):
        self.kind = kind
        self.certs = certs
        self.args = list(args)
        if not record:
            self.args.append("--no-record")
        self.log_path = log_path or os.path.join(certs.dir, "mock_%s.%d.log"
                                                 % (kind, id(self)))
        self.proc = None
        self.h2_port = None
        self.control_port = None

    def start(self, timeout=READY_TIMEOUT):
        cmd = [mock_binary(self.kind), "--cert", self.certs.server_cert,
               "--key", self.certs.server_key, "--listen", "127.0.0.1:0",
               "--control", "127.0.0.1:0"] + self.args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        _live_mocks.add(self)
        line = self._read_line(timeout)
        fields = dict(f.split("=", 1) for f in line.split()[1:]) \
            if line.startswith("READY ") else {}
        if "h2" not in fields or "control" not in fields:
            self.stop()
            raise MockError("%s did not get ready (%r); log:\n%s"
                            % (self.kind, line, self.log_text()))
        self.h2_port = int(fields["h2"])
        self.control_port = int(fields["control"])
        return self

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        data = b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace").strip()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        status, self.proc = self.proc.returncode, None
        _live_mocks.discard(self)
        return status

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()

    def url(self, path="/"):
        return "https://127.0.0.1:%d%s" % (self.h2_port, path)

    # The control API.

    def control(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control_port, path),
                                     data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise MockError("%s %s: %d %s" % (method, path, e.code, e.read().decode()))

    def requests(self):
        return self.control("GET", "/requests")["requests"]

    def clear_requests(self):
        self.control("DELETE", "/requests")

    def add_rule(self, **rule):
        """token=, status=, reason=, timestamp=, retry_after=, delay_ms=, times=, action=,
        h2_error=, topic= (APNs), error_code=, google_status=, message=, endpoint=
        ("send"|"token"), error=, error_description= (FCM)."""
        return self.control("POST", "/rules", rule)["ids"][0]

    def add_rules(self, rules):
        return self.control("POST", "/rules", rules)["ids"]

    def rules(self):
        return self.control("GET", "/rules")["rules"]

    def clear_rules(self):
        self.control("DELETE", "/rules")

    def settings(self, max_concurrent_streams):
        return self.control("POST", "/settings",
                            {"max_concurrent_streams": max_concurrent_streams})

    def goaway(self, last_stream_id=None, error_code=0, debug=None):
        body = {"error_code": error_code}
        if last_stream_id is not None:
            body["last_stream_id"] = last_stream_id
        if debug is not None:
            body["debug"] = debug
        return self.control("POST", "/goaway", body)["connections"]

    def disconnect(self, reset=False):
        return self.control("POST", "/disconnect", {"reset": reset})["connections"]

    def stats(self):
        return self.control("GET", "/stats")

    def clear_stats(self):
        self.control("DELETE", "/stats")

    def wait_for_requests(self, count, timeout=10.0):
        """Wait until at least count requests are recorded; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@atexit.register
def _stop_leftovers():
    """A test that forgot (or never reached) stop() leaves no mock behind."""
    for mock in list(_live_mocks):
        mock.stop()


def _main(argv):
    if len(argv) >= 2 and argv[0] == "certs":
        Certs.generate(argv[1])
        return 0
    if len(argv) >= 3 and argv[0] == "start":
        mock = Mock(argv[1], Certs(argv[2]), *argv[3:], log_path="/dev/stderr").start()
        print("READY h2=%d control=%d" % (mock.h2_port, mock.control_port), flush=True)
        try:
            mock.proc.wait()
        except KeyboardInterrupt:
            pass
        return mock.stop() or 0
    if len(argv) == 4 and argv[0] == "es256":
        print(es256_jwt(argv[1], argv[2], argv[3]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
