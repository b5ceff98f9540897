#!/usr/bin/env python3
"""The whole path on one machine: a support chat goes in, notifications come out.

Starts the mock APNs and mock FCM (TLS + HTTP/2, with their own test CA) and a
pushrelayd pointed at them, registers a customer (an iPhone and an Android phone) and
an agent, and plays a short conversation through POST /v1/events while the agent is in
the room and the customer is not. Then prints what each mock received: only the
customer's phones are notified, and only for what the agent said.

Run from a configured build tree: `make demo` (or python3 tools/demo.py there).
"""

import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
os.environ.setdefault("PUSHRELAY_TOP_SRCDIR", SRCDIR)
os.environ.setdefault("PUSHRELAY_TOP_BUILDDIR", os.getcwd())
os.environ.setdefault("PUSHRELAYD", os.path.join(os.environ["PUSHRELAY_TOP_BUILDDIR"],
                                                 "src", "pushrelayd"))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))

import harness  # noqa: E402
import mockctl  # noqa: E402

TOPIC = "com.example.support"
PROJECT = "example-support"
IPHONE_TOKEN = "5b1a" * 16


def say(text):
    print(text, flush=True)


def main():
    tmp = tempfile.mkdtemp(prefix="pushrelay-demo-")
    certs = mockctl.Certs.generate(os.path.join(tmp, "certs"))
    apns = mockctl.Mock("apns", certs, "--team-id", "TEAM123456", "--key-id", "ABC123DEFG",
                        "--auth-key", certs.apns_pub, "--topic", TOPIC).start()
    fcm = mockctl.Mock("fcm", certs, "--project-id", PROJECT, "--service-account-key",
                       certs.fcm_pub, "--client-email",
                       "relay@example-support.iam.gserviceaccount.com").start()
    account = mockctl.write_service_account(
        os.path.join(tmp, "service-account.json"), certs,
        "relay@example-support.iam.gserviceaccount.com",
        "https://127.0.0.1:%d/token" % fcm.h2_port, PROJECT)
    apns_url = "https://127.0.0.1:%d" % apns.h2_port
    daemon = harness.Daemon(config={
        'apns "%s"' % TOPIC: {"key_file": certs.apns_key, "key_id": "ABC123DEFG",
                              "team_id": "TEAM123456", "production_url": apns_url,
                              "sandbox_url": apns_url, "ca_file": certs.ca},
        'fcm "%s"' % PROJECT: {"service_account_file": account, "ca_file": certs.ca,
                               "url": "https://127.0.0.1:%d" % fcm.h2_port},
        "rooms": {"coalesce_window": "0", "presence_grace": "1s"},
    }, tmp=os.path.join(tmp, "daemon"))
    try:
        daemon.start()
        say("pushrelayd on 127.0.0.1:%d, mock APNs on :%d, mock FCM on :%d"
            % (daemon.port, apns.h2_port, fcm.h2_port))
        devices = [
            ("customer-iphone", "customer", "apns", TOPIC, IPHONE_TOKEN),
            ("customer-pixel", "customer", "fcm", PROJECT, "fcm-token-customer-pixel"),
            ("agent-iphone", "agent", "apns", TOPIC, "a9e7" * 16),
        ]
        for device_id, client, platform, app, token in devices:
            daemon.request("PUT", "/v1/devices/" + device_id, body={
                "client_id": client, "platform": platform, "app_id": app, "token": token})
            say("registered %-16s for %-8s (%s)" % (device_id, client, platform))
        for client in ("customer", "agent"):
            daemon.request("PUT", "/v1/rooms/order-1042/members/" + client)
        conversation = [
            {"type": "presence.enter", "room": "order-1042", "client_id": "customer",
             "connection_id": "web-1"},
            {"type": "presence.enter", "room": "order-1042", "client_id": "agent",
             "connection_id": "desk-7"},
            {"type": "message", "room": "order-1042", "id": "m1", "client_id": "customer",
             "sender_name": "Dana (customer)", "room_name": "Order #1042",
             "text": "Hi, my parcel has not arrived."},
            {"type": "presence.leave", "room": "order-1042", "client_id": "customer",
             "connection_id": "web-1"},
        ]
        later = [
            {"type": "message", "room": "order-1042", "id": "m2", "client_id": "agent",
             "sender_name": "Sam (support)", "room_name": "Order #1042",
             "text": "Sorry about that! It left the depot this morning."},
        ]
        status, _, answer, _ = daemon.request("POST", "/v1/events",
                                              body={"events": conversation})
        say("POST /v1/events (customer writes, then leaves the chat): %d %s"
            % (status, json.dumps(answer)))
        say("waiting for the customer's 1 s presence grace to pass...")
        time.sleep(1.3)
        status, _, answer, _ = daemon.request("POST", "/v1/events", body={"events": later})
        say("POST /v1/events (the agent answers): %d %s" % (status, json.dumps(answer)))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(apns.requests()) >= 1 and any(
                    r["path"].endswith("messages:send") for r in fcm.requests()):
                break
            time.sleep(0.1)
        time.sleep(0.3)
        say("\nmock APNs received:")
        for r in apns.requests():
            body = json.loads(r["body"])
            say("  %s %s -> %s  %s" % (r["method"], r["path"][:22] + "...", r["status"],
                                       json.dumps(body["aps"])))
        say("mock FCM received:")
        for r in fcm.requests():
            if r["path"] == "/token":
                say("  POST /token (OAuth token exchange) -> %s" % r["status"])
                continue
            message = json.loads(r["body"])["message"]
            say("  %s %s -> %s  token=%s notification=%s" % (
                r["method"], r["path"], r["status"], message["token"],
                json.dumps(message.get("notification"))))
        say("\nOnly the customer's two phones were notified, for the agent's message; the"
            " agent (in the room) and the sender were not.")
    finally:
        daemon.cleanup()
        apns.stop()
        fcm.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
