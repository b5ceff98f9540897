"""Once the daemon is ready, nothing ends it but a signal: every call of fatal(),
fatalx() or abort() in src/ must sit in a function that tests/fatal-allowed.txt
lists as start-up or real out-of-memory. An entry whose call is gone is stale and
fails too, so the list stays the exact set of places that may end the process.

Speaks TAP, like the rest of the suite: one test per call site, one per entry."""

import os
import re
import sys

TOP = os.environ.get("PUSHRELAY_TOP_SRCDIR",
                     os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALLOWLIST = os.path.join(TOP, "tests", "fatal-allowed.txt")
# The definitions of the exits, and every file of the CLI, which may exit as any
# command does.
EXEMPT = {"src/core/log.c": {"fatal", "fatalx", "vfatal"}, "src/contrib/xmalloc.c": None,
          **{"src/ctl/" + name: None for name in os.listdir(os.path.join(TOP, "src", "ctl"))
             if name.endswith(".c")}}

CALL = re.compile(r"\b(fatal|fatalx|abort)\s*\(")
# BSD style: the return type on its own line, the name at column 0 on the next.
DEFINITION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def strip_comments_and_strings(text):
    """Blank out comments, string and character literals, keeping line breaks."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call_sites():
    """(file, function, line) for every call, in file and line order."""
    sites = []
    src = os.path.join(TOP, "src")
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".c"):
                continue
            path = os.path.join(root, name)
            rel = os.path.relpath(path, TOP).replace(os.sep, "/")
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = strip_comments_and_strings(f.read()).split("\n")
            function = None
            for number, line in enumerate(lines, 1):
                m = DEFINITION.match(line)
                if m and not line.rstrip().endswith(";"):
                    function = m.group(1)
                for call in CALL.finditer(line):
                    # A line at column 0 naming the function is its definition.
                    if m and call.start() == 0:
                        continue
                    exempt = EXEMPT.get(rel, set())
                    if exempt is None or function in exempt:
                        continue
                    sites.append((rel, function or "(file scope)", number))
    return sites


def read_allowlist():
    """{(file, function): (reason, line number)}; reasons are required."""
    entries, problems = {}, []
    with open(ALLOWLIST, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text, _, reason = line.partition("#")
            fields = text.split()
            if not fields:
                continue
            if len(fields) != 2 or not reason.strip():
                problems.append("%s:%d: want 'file function  # why'" % (ALLOWLIST, number))
                continue
            entries[(fields[0], fields[1])] = (reason.strip(), number)
    return entries, problems


def main():
    sites = call_sites()
    entries, problems = read_allowlist()
    used = set()
    results = []
    for rel, function, number in sites:
        key = (rel, function)
        if key in entries:
            used.add(key)
            results.append((True, "%s:%d %s may exit: %s" % (rel, number, function,
                                                              entries[key][0])))
        else:
            results.append((False, "%s:%d %s calls fatal/fatalx/abort at run time "
                            "(handle the error, or list it in tests/fatal-allowed.txt "
                            "as start-up or real OOM)" % (rel, number, function)))
    for key, (reason, number) in sorted(entries.items(), key=lambda e: e[1][1]):
        results.append((key in used, "fatal-allowed.txt:%d %s %s %s" % (
            number, key[0], key[1], "is used" if key in used else
            "is stale: no fatal, fatalx or abort there any more")))
    for problem in problems:
        results.append((False, problem))
    print("1..%d" % len(results))
    for i, (ok, description) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, description))
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
