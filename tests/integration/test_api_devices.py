"""The device endpoints of docs/api.md: success paths, exact bodies and database rows."""

import json
import time
import urllib.parse

import harness
from harness import (DaemonTestCase, apns_device, apns_token, fcm_device, fcm_token, now_ms,
                     quote, time_to_ms)


def expected_device(device_id, body, got, last_success_at=None, last_error=None):
    """The device the API must return for a PUT body; times taken from got."""
    token = body["token"]
    if body["platform"] == "apns":
        token = token.lower()
    return {
        "device_id": device_id,
        "client_id": body["client_id"],
        "platform": body["platform"],
        "token": token,
        "app_id": body["app_id"],
        "environment": body.get("environment", "production"),
        "locale": body.get("locale"),
        "metadata": body.get("metadata"),
        "created_at": got["created_at"],
        "updated_at": got["updated_at"],
        "last_success_at": last_success_at,
        "last_error": last_error,
    }


class DeviceTestCase(DaemonTestCase):

    def setUp(self):
        self.d = self.start_daemon()

    def put(self, device_id, body, expect=None, **kw):
        result = self.d.request("PUT", "/v1/devices/" + quote(device_id), body, **kw)
        if expect is not None:
            self.assertEqual(result[0], expect, result[3])
        return result

    def get(self, device_id):
        return self.d.request("GET", "/v1/devices/" + quote(device_id))

    def row(self, device_id):
        rows = self.d.query("SELECT * FROM devices WHERE device_id = ?", (device_id,))
        self.assertLessEqual(len(rows), 1)
        return rows[0] if rows else None

    def assertRow(self, device, last_success_at=0, last_error=None, last_error_at=0):
        """The database row holds exactly the device the API returned (0: never)."""
        row = self.row(device["device_id"])
        self.assertIsNotNone(row, "no row for %r" % device["device_id"])
        metadata = row.pop("metadata")
        if device["metadata"] is None:
            self.assertIsNone(metadata)
        else:
            self.assertIsInstance(metadata, str)
            self.assertEqual(json.loads(metadata), device["metadata"])
        self.assertEqual(row, {
            "device_id": device["device_id"],
            "client_id": device["client_id"],
            "platform": device["platform"],
            "token": device["token"],
            "app_id": device["app_id"],
            "environment": device["environment"],
            "locale": device["locale"],
            "created_at": time_to_ms(device["created_at"]),
            "updated_at": time_to_ms(device["updated_at"]),
            "last_success_at": last_success_at,
            "last_error": last_error,
            "last_error_at": last_error_at,
        })


class PutDeviceTest(DeviceTestCase):

    def test_put_new_apns_device_returns_201_location_and_stored_device(self):
        body = apns_device("alice", token=apns_token().upper())
        before = now_ms()
        status, headers, got, raw = self.put("iphone-7f3a", body)
        self.assertEqual(status, 201, raw)
        self.assertTrue(headers["content-type"].startswith("application/json"))
        self.assertEqual(urllib.parse.urlsplit(headers.get("location", "")).path,
                         "/v1/devices/iphone-7f3a")
        self.assertTime(got["created_at"], before, 5000)
        self.assertEqual(got["updated_at"], got["created_at"])
        self.assertEqual(got, expected_device("iphone-7f3a", body, got))
        self.assertEqual(got["token"], body["token"].lower())
        status, _, fetched, _ = self.get("iphone-7f3a")
        self.assertEqual((status, fetched), (200, got))
        self.assertRow(got)

    def test_put_with_every_field_returns_them_as_sent(self):
        meta = {"app_version": "4.2.0", "nested": {"a": [1, 2.5, True, None]}, "n": -3}
        body = apns_device("alice", environment="sandbox", locale="en-GB", metadata=meta)
        status, _, got, raw = self.put("iphone-1", body)
        self.assertEqual(status, 201, raw)
        self.assertEqual(got, expected_device("iphone-1", body, got))
        self.assertEqual(self.get("iphone-1")[2], got)
        self.assertRow(got)

    def test_put_fcm_device_defaults_to_production(self):
        body = fcm_device("bob", locale="de")
        status, _, got, raw = self.put("pixel-9", body)
        self.assertEqual(status, 201, raw)
        self.assertEqual(got, expected_device("pixel-9", body, got))
        self.assertEqual(got["environment"], "production")
        self.assertEqual(got["token"], body["token"])
        self.assertRow(got)

    def test_fcm_token_is_stored_as_sent_not_lower_cased(self):
        token = "AbC-" + fcm_token().upper()
        status, _, got, raw = self.put("pixel-case", fcm_device("bob", token=token))
        self.assertEqual(status, 201, raw)
        self.assertEqual(got["token"], token)
        self.assertEqual(self.row("pixel-case")["token"], token)

    def test_put_existing_device_returns_200_and_keeps_created_at(self):
        first = apns_device("alice", locale="en-GB", metadata={"v": 1})
        status, _, created, _ = self.put("iphone-1", first, expect=201)
        time.sleep(0.02)
        second = apns_device("alice2", token=first["token"], app_id="com.example.other")
        status, headers, replaced, raw = self.put("iphone-1", second)
        self.assertEqual(status, 200, raw)
        self.assertEqual(replaced["created_at"], created["created_at"])
        self.assertNotEqual(replaced["updated_at"], created["updated_at"])
        self.assertGreater(time_to_ms(replaced["updated_at"]),
                           time_to_ms(created["updated_at"]))
        self.assertTime(replaced["updated_at"], now_ms(), 5000)
        # A replacement, not a merge: locale and metadata are gone.
        self.assertEqual(replaced, expected_device("iphone-1", second, replaced))
        self.assertEqual(self.get("iphone-1")[2], replaced)
        self.assertEqual(len(self.d.query("SELECT * FROM devices")), 1)
        self.assertRow(replaced)

    def test_record_from_get_can_be_edited_and_put_again(self):
        status, _, created, _ = self.put("iphone-1", apns_device("alice"), expect=201)
        time.sleep(0.01)
        record = dict(self.get("iphone-1")[2])
        record["locale"] = "fr-FR"
        record["created_at"] = "2001-01-01T00:00:00.000Z"
        record["updated_at"] = "2001-01-01T00:00:00.000Z"
        record["last_success_at"] = "2001-01-01T00:00:00.000Z"
        record["last_error"] = "BadDeviceToken"
        status, _, replaced, raw = self.put("iphone-1", record)
        self.assertEqual(status, 200, raw)
        self.assertEqual(replaced["created_at"], created["created_at"])
        self.assertGreater(time_to_ms(replaced["updated_at"]),
                           time_to_ms(created["updated_at"]))
        want = dict(created, locale="fr-FR", updated_at=replaced["updated_at"])
        self.assertEqual(replaced, want)
        self.assertRow(replaced)

    def test_replace_keeps_delivery_state_unless_the_token_changes(self):
        body = apns_device("alice")
        self.put("iphone-1", body, expect=201)
        success = 1795593600123
        error_at = 1795593700456
        # Delivery outcomes come from the relay; write them as it would.
        self.d.execute("UPDATE devices SET last_success_at = ?, last_error = ?, "
                       "last_error_at = ? WHERE device_id = ?",
                       (success, "Unregistered", error_at, "iphone-1"))
        status, _, got, _ = self.get("iphone-1")
        self.assertEqual(got["last_success_at"], "2026-11-25T08:00:00.123Z")
        self.assertEqual(got["last_error"], "Unregistered")

        same = dict(body, locale="en-US")
        status, _, kept, raw = self.put("iphone-1", same)
        self.assertEqual(status, 200, raw)
        self.assertEqual(kept, expected_device("iphone-1", same, kept,
                                               last_success_at="2026-11-25T08:00:00.123Z",
                                               last_error="Unregistered"))
        self.assertRow(kept, last_success_at=success, last_error="Unregistered",
                       last_error_at=error_at)

        # The same token in upper case is the same token.
        upper = dict(same, token=body["token"].upper())
        status, _, kept, raw = self.put("iphone-1", upper)
        self.assertEqual(status, 200, raw)
        self.assertEqual(kept["last_error"], "Unregistered")

        changed = dict(same, token=apns_token())
        status, _, reset, raw = self.put("iphone-1", changed)
        self.assertEqual(status, 200, raw)
        self.assertEqual(reset, expected_device("iphone-1", changed, reset))
        self.assertRow(reset)

    def test_token_registered_by_another_device_moves_to_it(self):
        token = apns_token()
        self.put("device-a", apns_device("alice", token=token), expect=201)
        status, _, b, raw = self.put("device-b", apns_device("bob", token=token.upper()))
        self.assertEqual(status, 201, raw)
        self.assertEqual(b["token"], token)
        self.assertErrorBody(self.get("device-a"), 404, "not_found")
        self.assertEqual(self.get("device-b")[2], b)
        rows = self.d.query("SELECT device_id FROM devices WHERE token = ?", (token,))
        self.assertEqual(rows, [{"device_id": "device-b"}])
        self.assertEqual(len(self.d.query("SELECT * FROM devices")), 1)
        self.assertEqual(self.d.request("GET", "/v1/clients/alice/devices")[2],
                         {"client_id": "alice", "devices": []})

    def test_token_move_by_replacing_an_existing_device(self):
        token_a, token_b = apns_token(), apns_token()
        self.put("device-a", apns_device("alice", token=token_a), expect=201)
        self.put("device-b", apns_device("alice", token=token_b), expect=201)
        status, _, b, raw = self.put("device-b", apns_device("alice", token=token_a))
        self.assertEqual(status, 200, raw)
        self.assertEqual(self.get("device-a")[0], 404)
        self.assertEqual([r["device_id"] for r in self.d.query("SELECT * FROM devices")],
                         ["device-b"])

    def test_same_token_on_the_other_platform_is_not_moved(self):
        token = apns_token()
        status, _, a, _ = self.put("phone-apns", apns_device("alice", token=token), expect=201)
        status, _, f, _ = self.put("phone-fcm", fcm_device("alice", token=token), expect=201)
        self.assertEqual(self.get("phone-apns")[2], a)
        self.assertEqual(self.get("phone-fcm")[2], f)
        self.assertEqual(len(self.d.query("SELECT * FROM devices")), 2)

    def test_ids_are_percent_decoded_path_segments(self):
        for device_id, client_id in (("a/b", "ali ce"), ("телефон-1", "zoë/x"),
                                     ("x%y?z#w", "c+d")):
            with self.subTest(device_id=device_id):
                body = apns_device(client_id)
                status, headers, got, raw = self.put(device_id, body)
                self.assertEqual(status, 201, raw)
                self.assertEqual(got, expected_device(device_id, body, got))
                self.assertEqual(urllib.parse.urlsplit(headers.get("location", "")).path,
                                 "/v1/devices/" + quote(device_id))
                self.assertEqual(self.get(device_id)[2], got)
                status, _, listed, _ = self.d.request(
                    "GET", "/v1/clients/%s/devices" % quote(client_id))
                self.assertEqual(listed, {"client_id": client_id, "devices": [got]})
                self.assertRow(got)

    def test_ids_of_128_bytes_are_accepted(self):
        for device_id, client_id in (("d" * 128, "c" * 128), ("é" * 64, "ü" * 64)):
            with self.subTest(device_id=device_id):
                self.assertEqual(len(device_id.encode()), 128)
                body = apns_device(client_id)
                status, _, got, raw = self.put(device_id, body)
                self.assertEqual(status, 201, raw)
                self.assertEqual(got, expected_device(device_id, body, got))
                self.assertRow(got)

    def test_field_limits_are_inclusive(self):
        cases = [
            ("apns-32", apns_device(token="ab" * 16)),
            ("apns-512", apns_device(token="Cd" * 256)),
            ("fcm-4096", fcm_device(token="t" * 4096)),
            ("app-255", apns_device(app_id="a" * 255)),
            ("app-ascii", apns_device(app_id="com.example!~{}")),
            # {"k":"..."} is 8 bytes of syntax: exactly 4096 bytes as compact JSON.
            ("meta-4096", apns_device(metadata={"k": "m" * 4088})),
            ("meta-empty", apns_device(metadata={})),
            ("locale-null", apns_device(locale=None, metadata=None)),
            ("locale-tag", apns_device(locale="zh-Hant-TW")),
        ]
        for device_id, body in cases:
            with self.subTest(device_id=device_id):
                status, _, got, raw = self.put(device_id, body)
                self.assertEqual(status, 201, raw)
                self.assertEqual(got, expected_device(device_id, body, got))
                self.assertRow(got)

    def test_body_device_id_equal_to_the_url_is_accepted(self):
        body = apns_device("alice", device_id="iphone-1")
        status, _, got, raw = self.put("iphone-1", body)
        self.assertEqual(status, 201, raw)
        del body["device_id"]
        self.assertEqual(got, expected_device("iphone-1", body, got))

    def test_content_type_with_charset_parameter_is_accepted(self):
        body = apns_device("alice")
        status, _, got, raw = self.put(
            "iphone-1", body, headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(status, 201, raw)
        self.assertEqual(got, expected_device("iphone-1", body, got))

    def test_utf8_body_is_accepted(self):
        raw_body = ('{"client_id":"zoë","platform":"fcm","token":"tok-1",'
                    '"app_id":"example","metadata":{"name":"Zoë’s phone"}}').encode("utf-8")
        status, _, got, raw = self.d.request("PUT", "/v1/devices/zoe-1", raw_body=raw_body)
        self.assertEqual(status, 201, raw)
        self.assertEqual(got["client_id"], "zoë")
        self.assertEqual(got["metadata"], {"name": "Zoë’s phone"})
        self.assertRow(got)


class GetDeleteDeviceTest(DeviceTestCase):

    def test_get_unknown_device_is_404(self):
        self.assertErrorBody(self.get("nope"), 404, "not_found")

    def test_delete_device_returns_204_then_404(self):
        status, _, got, _ = self.put("iphone-1", apns_device("alice"), expect=201)
        self.put("iphone-2", apns_device("alice"), expect=201)
        status, headers, body, raw = self.d.request("DELETE", "/v1/devices/iphone-1")
        self.assertEqual(status, 204)
        self.assertEqual(raw, b"")
        self.assertErrorBody(self.get("iphone-1"), 404, "not_found")
        self.assertIsNone(self.row("iphone-1"))
        self.assertIsNotNone(self.row("iphone-2"))
        result = self.d.request("DELETE", "/v1/devices/iphone-1")
        self.assertErrorBody(result, 404, "not_found")

    def test_deleted_token_can_be_registered_again(self):
        token = apns_token()
        self.put("iphone-1", apns_device("alice", token=token), expect=201)
        self.assertEqual(self.d.request("DELETE", "/v1/devices/iphone-1")[0], 204)
        status, _, got, raw = self.put("iphone-1", apns_device("alice", token=token))
        self.assertEqual(status, 201, raw)


class ClientDevicesTest(DeviceTestCase):

    def test_list_is_ordered_by_device_id(self):
        stored = {}
        for device_id in ("c-phone", "a-phone", "b-tablet", "B-upper"):
            body = apns_device("alice") if device_id != "b-tablet" else fcm_device("alice")
            stored[device_id] = self.put(device_id, body, expect=201)[2]
        self.put("bob-phone", apns_device("bob"), expect=201)
        status, _, body, raw = self.d.request("GET", "/v1/clients/alice/devices")
        self.assertEqual(status, 200, raw)
        self.assertEqual(body, {"client_id": "alice", "devices": [
            stored["B-upper"], stored["a-phone"], stored["b-tablet"], stored["c-phone"]]})

    def test_unknown_client_has_an_empty_list(self):
        status, _, body, _ = self.d.request("GET", "/v1/clients/nobody/devices")
        self.assertEqual((status, body), (200, {"client_id": "nobody", "devices": []}))

    def test_delete_client_devices_removes_only_that_clients_devices(self):
        for i in range(3):
            self.put("alice-%d" % i, apns_device("alice"), expect=201)
        status, _, bobs, _ = self.put("bob-1", apns_device("bob"), expect=201)
        status, _, body, raw = self.d.request("DELETE", "/v1/clients/alice/devices")
        self.assertEqual((status, body), (200, {"client_id": "alice", "deleted": 3}), raw)
        self.assertEqual(self.d.request("GET", "/v1/clients/alice/devices")[2],
                         {"client_id": "alice", "devices": []})
        self.assertEqual(self.d.request("GET", "/v1/clients/bob/devices")[2],
                         {"client_id": "bob", "devices": [bobs]})
        self.assertEqual([r["device_id"] for r in self.d.query("SELECT * FROM devices")],
                         ["bob-1"])
        status, _, body, _ = self.d.request("DELETE", "/v1/clients/alice/devices")
        self.assertEqual((status, body), (200, {"client_id": "alice", "deleted": 0}))

    def test_delete_unknown_client_deletes_nothing(self):
        self.put("bob-1", apns_device("bob"), expect=201)
        status, _, body, _ = self.d.request("DELETE", "/v1/clients/" + quote("a/b") +
                                            "/devices")
        self.assertEqual((status, body), (200, {"client_id": "a/b", "deleted": 0}))
        self.assertEqual(len(self.d.query("SELECT * FROM devices")), 1)


class TokenLoggingTest(DaemonTestCase):

    def test_device_tokens_never_appear_in_the_log(self):
        d = self.start_daemon({"log": {"level": "debug"}})
        apns = apns_token()
        fcm = fcm_token()
        moved = apns_token()
        self.assertEqual(d.request("PUT", "/v1/devices/a", apns_device(token=apns))[0], 201)
        self.assertEqual(d.request("PUT", "/v1/devices/f", fcm_device(token=fcm))[0], 201)
        self.assertEqual(d.request("PUT", "/v1/devices/m1", apns_device(token=moved))[0], 201)
        self.assertEqual(d.request("PUT", "/v1/devices/m2", apns_device(token=moved))[0], 201)
        d.request("GET", "/v1/devices/a")
        d.request("GET", "/v1/clients/alice/devices")
        d.request("PUT", "/v1/devices/bad", apns_device(token=apns + "zz"))
        d.request("DELETE", "/v1/clients/alice/devices")
        self.assertEqual(d.stop(), 0)
        for token in (apns, fcm, moved, apns.upper()):
            self.assertFalse(d.secret_in_log(token), "a token is in the log:\n" + d.log_text())
        self.assertFalse(d.secret_in_log(d.key), "the API key is in the log")


if __name__ == "__main__":
    harness.main()
