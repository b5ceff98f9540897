"""Metrics end to end: GET /metrics (Prometheus text format 0.0.4) and GET /v1/stats.

A real pushrelayd, first in a dry run (no provider credentials), then against the mock
APNs of tests/mocks. /metrics is parsed here by a strict parser of the text format (names,
HELP and TYPE once per family and before its samples, label escaping, histograms
cumulative with +Inf equal to _count), and the figures are checked exactly: counters as
differences between two scrapes, so that the tests of a class can share their daemon.
"""

import json
import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
import mockctl  # noqa: E402
from fixtures import APP, MAX_ATTEMPTS  # noqa: E402
from harness import uid  # noqa: E402

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FINAL_OUTCOMES = ("sent", "failed", "token_removed", "rejected", "config_error", "cancelled")
STATS_KEYS = {"version", "started_at", "uptime_seconds", "devices", "pushes_accepted",
              "delivery", "notifications", "latency", "providers", "sources", "router",
              "feedback", "api_requests"}

CERTS = None
_TMP = None
VERSION = None


def setUpModule():
    global CERTS, _TMP, VERSION
    code, out, _ = harness.run_pushrelayd(["--version"])
    VERSION = out.split()[-1] if code == 0 and out.startswith("pushrelayd ") else None
    CERTS, _TMP = mockctl.module_certs("pushrelay-metrics-")


# ---- a strict parser of the Prometheus text format (0.0.4) -------------------------

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class FormatError(AssertionError):
    pass


class Exposition:
    """Families {name: {"type", "help"}} and samples {(name, labels): value}."""

    def __init__(self):
        self.families = {}
        self.samples = {}
        self.order = []

    def value(self, name, **labels):
        """The value of one series, or None when it is absent."""
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def series(self, name):
        """Every (labels dict, value) of a sample name."""
        return [(dict(lbl), v) for (n, lbl), v in self.samples.items() if n == name]


def _unescape_help(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "\\n":
            out.append("\\" if text[i + 1] == "\\" else "\n")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _parse_labels(line, i, where):
    """Parse {name="value",...} from line[i] == "{"; returns (labels, index after })."""
    labels = {}
    i += 1
    while True:
        if line[i] == "}":
            return labels, i + 1
        m = LABEL_NAME_RE.match(line, i)
        if m is None:
            raise FormatError("%s: bad label name at column %d" % (where, i))
        name = m.group(0)
        i = m.end()
        if line[i:i + 2] != '="':
            raise FormatError("%s: expected =\" after label %s" % (where, name))
        i += 2
        value = []
        while True:
            if i >= len(line):
                raise FormatError("%s: unterminated label value" % where)
            c = line[i]
            if c == "\\":
                nxt = line[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise FormatError("%s: bad escape \\%s" % (where, nxt))
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise FormatError("%s: raw newline in a label value" % where)
            else:
                value.append(c)
                i += 1
        if name in labels:
            raise FormatError("%s: label %s twice" % (where, name))
        labels[name] = "".join(value)
        if line[i] == ",":
            i += 1
        elif line[i] != "}":
            raise FormatError("%s: expected , or } at column %d" % (where, i))


def parse_prometheus(text):
    """Parse an exposition strictly; raise FormatError on anything out of place."""
    if not text.endswith("\n"):
        raise FormatError("the exposition does not end with a newline")
    out = Exposition()
    current = None
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (number, line)
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line[7:].split(" ", 1)
            name = parts[0]
            if not METRIC_NAME_RE.fullmatch(name):
                raise FormatError("%s: bad metric name" % where)
            if line.startswith("# HELP "):
                if name in out.families:
                    raise FormatError("%s: family declared twice" % where)
                out.families[name] = {"help": _unescape_help(parts[1] if len(parts) > 1
                                                             else ""), "type": None}
                out.order.append(name)
                current = name
            else:
                if name != current or out.families[name]["type"] is not None:
                    raise FormatError("%s: TYPE not right after its HELP" % where)
                if len(parts) != 2 or parts[1] not in TYPES:
                    raise FormatError("%s: bad type" % where)
                out.families[name]["type"] = parts[1]
            continue
        if line.startswith("#") or line == "":
            raise FormatError("%s: unexpected comment or blank line" % where)
        m = METRIC_NAME_RE.match(line)
        if m is None:
            raise FormatError("%s: bad sample name" % where)
        name, i = m.group(0), m.end()
        labels = {}
        if line[i:i + 1] == "{":
            labels, i = _parse_labels(line, i, where)
        if line[i:i + 1] != " ":
            raise FormatError("%s: expected a space before the value" % where)
        fields = line[i + 1:].split(" ")
        if len(fields) not in (1, 2):
            raise FormatError("%s: expected a value and an optional timestamp" % where)
        try:
            value = float(fields[0])
        except ValueError:
            raise FormatError("%s: bad value" % where)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and out.families.get(base, {}).get("type") == \
                    "histogram":
                family = base
        if family != current:
            raise FormatError("%s: sample outside its family (current %s)" % (where, current))
        if out.families[family]["type"] == "histogram" and family == name:
            raise FormatError("%s: a histogram sample without a suffix" % where)
        if "le" in labels and not name.endswith("_bucket"):
            raise FormatError("%s: le on a sample that is not a bucket" % where)
        key = (name, tuple(sorted(labels.items())))
        if key in out.samples:
            raise FormatError("%s: series twice" % where)
        out.samples[key] = value
    _check_histograms(out)
    return out


def _check_histograms(out):
    """Buckets are cumulative, end with +Inf, and +Inf equals _count."""
    for family, info in out.families.items():
        if info["type"] != "histogram":
            continue
        groups = {}
        for labels, value in out.series(family + "_bucket"):
            le = labels.pop("le", None)
            if le is None:
                raise FormatError("%s: bucket without le" % family)
            groups.setdefault(tuple(sorted(labels.items())), []).append(
                (math.inf if le == "+Inf" else float(le), value))
        for labels, buckets in groups.items():
            buckets.sort()
            if buckets[-1][0] != math.inf:
                raise FormatError("%s%s: no +Inf bucket" % (family, labels))
            counts = [c for _, c in buckets]
            if counts != sorted(counts):
                raise FormatError("%s%s: buckets not cumulative: %r" % (family, labels,
                                                                       buckets))
            total = out.samples.get((family + "_count", labels))
            if total != counts[-1] or (family + "_sum", labels) not in out.samples:
                raise FormatError("%s%s: _count %r, +Inf %r, or no _sum" % (
                    family, labels, total, counts[-1]))


# ---- the test cases -----------------------------------------------------------------

class MetricsCase(harness.DaemonTestCase):
    """One daemon per class; extra_config is merged into its configuration."""

    apns = False

    @classmethod
    def setUpClass(cls):
        cls.daemon = cls.mock = None
        try:
            config = {"delivery": fixtures.delivery_config()}
            if cls.apns:
                cls.mock = fixtures.apns_mock(CERTS)
                config.update(fixtures.apns_section(CERTS, cls.mock.url("")))
            cls.daemon = harness.Daemon(config=config)
            cls.daemon.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        problems = fixtures.stop_all(cls.daemon, (cls.mock,))
        if problems:
            raise AssertionError("\n".join(problems))

    def setUp(self):
        if self.mock is not None:
            self.mock.clear_rules()

    def scrape(self):
        """GET /metrics without a key: 200, the exact content type, a valid exposition."""
        st, headers, _, raw = self.daemon.request("GET", "/metrics", key=None)
        self.assertEqual(st, 200, raw)
        self.assertEqual(headers.get("content-type"), CONTENT_TYPE)
        return parse_prometheus(raw.decode("utf-8"))

    def register(self, client, app=APP, device_id=None, token=None):
        device_id = device_id or "dev-" + uid()
        body = harness.apns_device(client_id=client, app_id=app, token=token)
        st, _, stored, raw = self.daemon.request(
            "PUT", "/v1/devices/" + harness.quote(device_id), body=body)
        self.assertEqual(st, 201, raw)
        return stored

    def push_and_wait(self, recipients, timeout=10.0):
        st, _, body, raw = self.daemon.request(
            "POST", "/v1/push", body={"recipients": recipients,
                                      "notification": {"body": "hi"}})
        self.assertEqual(st, 202, raw)
        return fixtures.wait_push_finished(self, self.daemon, body["push_id"], timeout)

    def outcomes(self, scrape, app=APP):
        """{outcome: value} of pushrelay_notifications_total for an APNs app (0: absent)."""
        return {o: scrape.value("pushrelay_notifications_total", provider="apns", app=app,
                                outcome=o) or 0 for o in FINAL_OUTCOMES}

    def assertOutcomeDelta(self, before, after, expected, app=APP):
        """The APNs app's outcome counters grew by exactly expected (others by 0)."""
        b, a = self.outcomes(before, app), self.outcomes(after, app)
        want = dict.fromkeys(FINAL_OUTCOMES, 0)
        want.update(expected)
        self.assertEqual({o: a[o] - b[o] for o in FINAL_OUTCOMES}, want)

    @staticmethod
    def delta(before, after, name, **labels):
        return (after.value(name, **labels) or 0) - (before.value(name, **labels) or 0)


class DryRunMetricsTest(MetricsCase):
    """Without credentials: every family is there, deliveries are logged and counted."""

    def test_metrics_needs_no_key_and_every_family_is_well_formed(self):
        scrape = self.scrape()
        self.assertEqual(scrape.series("pushrelay_build_info"), [({"version": VERSION}, 1)])
        self.assertEqual(scrape.value("pushrelay_provider_dry_run", provider="apns"), 1)
        self.assertEqual(scrape.value("pushrelay_provider_dry_run", provider="fcm"), 1)
        self.assertEqual(scrape.value("pushrelay_deliveries_in_flight"), 0)
        self.assertEqual(scrape.value("pushrelay_h2_connections", provider="apns"), 0)
        started = scrape.value("pushrelay_start_time_seconds")
        self.assertLessEqual(abs(started - time.time()), 120)
        for name, info in scrape.families.items():
            self.assertTrue(name.startswith("pushrelay_"), name)
            self.assertTrue(info["help"], name)
            self.assertEqual(info["type"] == "counter", name.endswith("_total"), name)
        self.assertEqual(scrape.families["pushrelay_notification_latency_seconds"]["type"],
                         "histogram")
        self.assertEqual(scrape.value("pushrelay_notification_latency_seconds_bucket",
                                      provider="apns", le="+Inf"),
                         scrape.value("pushrelay_notification_latency_seconds_count",
                                      provider="apns"))

    def test_stats_needs_the_api_key(self):
        self.assertUnauthorized(self.daemon.request("GET", "/v1/stats", key=None))
        self.assertUnauthorized(self.daemon.request("GET", "/v1/stats", key="wrong-key"))
        st, headers, stats, raw = self.daemon.request("GET", "/v1/stats")
        self.assertEqual(st, 200, raw)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"))
        self.assertEqual(set(stats), STATS_KEYS, raw)
        self.assertEqual(stats["version"], VERSION)
        self.assertTime(stats["started_at"], near_ms=harness.now_ms(), slack_ms=120000)
        self.assertEqual(stats["providers"]["apns"]["backend"], "log")
        self.assertIs(stats["providers"]["apns"]["dry_run"], True)

    def test_dry_run_push_to_three_devices_counts_three_sent(self):
        app = "com.metrics.dry" + uid()
        client = "dry-" + uid()
        before = self.scrape()
        devices = [self.register(client, app=app) for _ in range(3)]
        status = self.push_and_wait({"client_ids": [client]})
        self.assertEqual(status["counts"]["sent"], 3, status)
        after = self.scrape()
        self.assertOutcomeDelta(before, after, {"sent": 3}, app=app)
        self.assertEqual(after.value("pushrelay_retries_total", provider="apns", app=app), 0)
        self.assertEqual(self.delta(before, after,
                                    "pushrelay_notification_latency_seconds_count",
                                    provider="apns"), 3)
        self.assertEqual(self.delta(before, after, "pushrelay_pushes_accepted_total"), 1)
        self.assertEqual(self.delta(before, after, "pushrelay_registry_devices"), len(devices))
        self.assertEqual(after.value("pushrelay_deliveries_queued"), 0)

        st, _, stats, raw = self.daemon.request("GET", "/v1/stats")
        self.assertEqual(st, 200, raw)
        [row] = [r for r in stats["notifications"] if r["app"] == app]
        self.assertEqual(row, {"provider": "apns", "app": app, "sent": 3, "failed": 0,
                               "token_removed": 0, "retried": 0, "rejected": 0,
                               "config_error": 0, "cancelled": 0})
        self.assertEqual(stats["devices"], after.value("pushrelay_registry_devices"))

    def test_api_requests_are_counted_by_route_pattern_never_by_path(self):
        device_id = "route-" + uid()
        before = self.scrape()
        body = harness.apns_device(client_id="routes")
        path = "/v1/devices/" + device_id
        self.assertEqual(self.daemon.request("PUT", path, body=body)[0], 201)
        self.assertEqual(self.daemon.request("PUT", path, body=body)[0], 200)
        self.assertEqual(self.daemon.request("GET", path)[0], 200)
        self.assertEqual(self.daemon.request("GET", path + "x")[0], 404)
        self.assertEqual(self.daemon.request("GET", path, key=None)[0], 401)
        self.assertEqual(self.daemon.request("PATCH", path)[0], 405)
        self.assertEqual(self.daemon.request("GET", "/nowhere/" + device_id)[0], 404)
        self.assertEqual(self.daemon.request("GET", "/v1/stats")[0], 200)
        after = self.scrape()
        route = "/v1/devices/{device_id}"
        got = {(lbl["route"], lbl["method"], lbl["status"]):
               v - (before.value("pushrelay_api_requests_total", **lbl) or 0)
               for lbl, v in after.series("pushrelay_api_requests_total")
               if lbl["route"] != "/metrics"}
        self.assertEqual({k: v for k, v in got.items() if v != 0}, {
            (route, "PUT", "201"): 1, (route, "PUT", "200"): 1, (route, "GET", "200"): 1,
            (route, "GET", "404"): 1, (route, "GET", "401"): 1, (route, "PATCH", "405"): 1,
            ("unmatched", "GET", "404"): 1, ("/v1/stats", "GET", "200"): 1})
        self.assertNotIn(device_id, "\n".join(repr(k) for k in after.samples))


    def test_dashboard_and_operations_guide_name_only_metrics_that_exist(self):
        scrape = self.scrape()
        names = set(scrape.families)
        for family, info in scrape.families.items():
            if info["type"] == "histogram":
                names |= {family + "_bucket", family + "_sum", family + "_count"}
        top = mockctl.top_srcdir()
        with open(os.path.join(top, "packaging", "grafana", "pushrelay-dashboard.json")) as f:
            dashboard = json.load(f)
        self.assertEqual(dashboard["schemaVersion"], 38)
        self.assertIn("datasource", [v["name"] for v in dashboard["templating"]["list"]])
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        self.assertGreater(len(exprs), 20)
        self.assertEqual(set(re.findall(r"pushrelay_[a-z0-9_]+", " ".join(exprs))) - names,
                         set())
        with open(os.path.join(top, "docs", "operations.md")) as f:
            guide = f.read()
        section = guide[guide.index("## Metrics and alerts"):guide.index("## Uninstall")]
        self.assertEqual(set(re.findall(r"pushrelay_[a-z0-9_]+", section)) - names, set())
        # Every family is in the guide's table, whole or by its tail ("`_retrying`").
        undocumented = [n for n in scrape.families
                        if not any("`%s`" % n[k:] in section
                                   for k in range(len(n)) if n[k] == "_" or k == 0)]
        self.assertEqual(undocumented, [])


class ApnsMetricsTest(MetricsCase):
    """Against the mock APNs: outcomes, retries, token removal and the HTTP/2 gauges."""

    apns = True

    def test_push_to_three_devices_counts_exactly_three_sent(self):
        client = "three-" + uid()
        before = self.scrape()
        for _ in range(3):
            self.register(client)
        status = self.push_and_wait({"client_ids": [client]})
        self.assertEqual(status["counts"]["sent"], 3, status)
        after = self.scrape()
        self.assertOutcomeDelta(before, after, {"sent": 3})
        self.assertEqual(self.delta(before, after,
                                    "pushrelay_notification_latency_seconds_count",
                                    provider="apns"), 3)
        self.assertEqual(after.value("pushrelay_provider_dry_run", provider="apns"), 0)
        self.assertEqual(after.value("pushrelay_provider_dry_run", provider="fcm"), 1)
        self.assertGreaterEqual(after.value("pushrelay_h2_connections", provider="apns"), 1)
        self.assertEqual(after.value("pushrelay_h2_streams_in_flight", provider="apns"), 0)
        self.assertGreaterEqual(after.value("pushrelay_provider_token_renewals_total",
                                            provider="apns"), 1)
        self.assertEqual(self.delta(before, after, "pushrelay_provider_auth_failures_total",
                                    provider="apns"), 0)

    def test_apns_410_counts_one_token_removed(self):
        client = "gone-" + uid()
        device = self.register(client)
        self.mock.add_rule(token=device["token"], status=410, reason="Unregistered",
                           timestamp=harness.time_to_ms(device["updated_at"]) + 1000)
        before = self.scrape()
        status = self.push_and_wait({"client_ids": [client]})
        self.assertEqual(status["counts"]["token_removed"], 1, status)
        after = self.scrape()
        self.assertOutcomeDelta(before, after, {"token_removed": 1})
        self.assertEqual(self.delta(before, after, "pushrelay_registry_devices"), -1)

    def test_apns_500_counts_each_retry_then_one_failure(self):
        client = "down-" + uid()
        device = self.register(client)
        self.mock.add_rule(token=device["token"], status=500, reason="InternalServerError")
        before = self.scrape()
        status = self.push_and_wait({"client_ids": [client]})
        self.assertEqual(status["counts"]["failed"], 1, status)
        after = self.scrape()
        self.assertOutcomeDelta(before, after, {"failed": 1})
        self.assertEqual(self.delta(before, after, "pushrelay_retries_total", provider="apns",
                                    app=APP), MAX_ATTEMPTS - 1)
        self.assertEqual(self.delta(before, after,
                                    "pushrelay_notification_latency_seconds_count",
                                    provider="apns"), 1)

    def test_apns_403_invalid_provider_token_counts_config_error_and_auth_failure(self):
        client = "cfg-" + uid()
        device = self.register(client)
        self.mock.add_rule(token=device["token"], status=403, reason="InvalidProviderToken")
        before = self.scrape()
        status = self.push_and_wait({"client_ids": [client]})
        self.assertEqual(status["counts"]["failed"], 1, status)
        after = self.scrape()
        self.assertOutcomeDelta(before, after, {"config_error": 1})
        self.assertEqual(self.delta(before, after, "pushrelay_provider_auth_failures_total",
                                    provider="apns"), 1)

    def test_stats_shows_the_figures_of_the_scrape(self):
        client = "stats-" + uid()
        self.register(client)
        self.push_and_wait({"client_ids": [client]})
        scrape = self.scrape()
        st, _, stats, raw = self.daemon.request("GET", "/v1/stats")
        self.assertEqual(st, 200, raw)
        [row] = [r for r in stats["notifications"] if r["provider"] == "apns"
                 and r["app"] == APP]
        for outcome in FINAL_OUTCOMES:
            self.assertEqual(row[outcome], scrape.value("pushrelay_notifications_total",
                                                        provider="apns", app=APP,
                                                        outcome=outcome), outcome)
        apns = stats["providers"]["apns"]
        self.assertEqual((apns["backend"], apns["dry_run"]), ("apns", False))
        self.assertEqual(apns["token_renewals"], scrape.value(
            "pushrelay_provider_token_renewals_total", provider="apns"))
        self.assertEqual(stats["latency"]["apns"]["count"], scrape.value(
            "pushrelay_notification_latency_seconds_count", provider="apns"))
        self.assertEqual(stats["latency"]["apns"]["buckets"][-1]["le_ms"], 60000)


class ParserTest(harness.DaemonTestCase):
    """The parser above rejects what Prometheus would, so a pass means something."""

    def test_parser_rejects_malformed_expositions(self):
        good = ('# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n"} 1\n')
        self.assertEqual(parse_prometheus(good).value("a_total", x='q"\\\n'), 1)
        bad = [
            "# HELP a A.\n# TYPE a gauge\na 1",                       # no final newline
            "# HELP a A.\n# TYPE a gauge\na{x=\"\\q\"} 1\n",          # bad escape
            "# HELP a A.\n# TYPE a gauge\n# HELP a A.\n# TYPE a gauge\n",  # twice
            "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na 1\n",  # outside
            "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                # series twice
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
            "h_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",          # not cumulative
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0\nh_count 1\n",
        ]
        for text in bad:
            with self.subTest(text=text):
                with self.assertRaises(FormatError):
                    parse_prometheus(text)


if __name__ == "__main__":
    harness.main()
