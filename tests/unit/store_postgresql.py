"""The store's unit tests on PostgreSQL: starts a throwaway cluster
(tests/integration/harness.py's PostgresServer), then runs test_store and
test_store_writer (the tests of what every backend does) and test_store_pg (what only PostgreSQL does: reconnection,
lock timeouts, its schema) against a database of it, and prints their TAP as one
stream for automake's tap-driver.sh. A server that does not start fails every test:
nothing is skipped.
"""

import os
import re
import subprocess
import sys

TOP_SRCDIR = os.environ.get("PUSHRELAY_TOP_SRCDIR", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
TOP_BUILDDIR = os.environ.get("PUSHRELAY_TOP_BUILDDIR", ".")
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))
import harness  # noqa: E402

BINARIES = ("test_store", "test_store_writer", "test_store_pg")
RESULT_RE = re.compile(r"^(not ok|ok) \d+(.*)$")


def run(binary, env):
    """The TAP lines of one cmocka binary, its plan dropped; a crash is a failure."""
    path = os.path.join(TOP_BUILDDIR, "tests", "unit", binary)
    p = subprocess.run([path], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=600)
    lines = []
    results = 0
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if re.match(r"^1\.\.\d+", line):
            continue
        m = RESULT_RE.match(line)
        if m:
            results += 1
            lines.append((m.group(1), "%s:%s" % (binary, m.group(2).lstrip(" -"))))
        else:
            lines.append((None, line))
    for line in p.stderr.decode("utf-8", "replace").splitlines():
        lines.append((None, "# " + line))
    if p.returncode != 0 and results == 0:
        lines.append(("not ok", "%s: exited with %d and ran no test" % (binary,
                                                                         p.returncode)))
    return lines


def main():
    try:
        server = harness.postgres()
        dbname = server.create_database()
    except Exception as e:      # no server: every binary fails, nothing is skipped
        print("1..%d" % len(BINARIES))
        for i, binary in enumerate(BINARIES, 1):
            print("not ok %d - %s: PostgreSQL did not start" % (i, binary))
        print("# %s" % str(e).replace("\n", "\n# "))
        sys.exit(1)
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP", PUSHRELAY_TEST_STORE="postgresql",
               PUSHRELAY_TEST_PG=server.conninfo(dbname),
               PUSHRELAY_TEST_PG_SERVER=server.data)
    lines = []
    for binary in BINARIES:
        lines += run(binary, env)
    print("1..%d" % sum(1 for kind, _ in lines if kind is not None))
    n = 0
    failed = False
    for kind, text in lines:
        if kind is None:
            print(text if text.startswith("#") else "# " + text)
            continue
        n += 1
        failed |= kind == "not ok"
        print("%s %d - %s" % (kind, n, text))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
