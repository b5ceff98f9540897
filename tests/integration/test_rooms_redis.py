"""The room-event suite (test_rooms.py) again, with the room state in Redis.

Every class of test_rooms.py that routes messages runs here unchanged, on one daemon
whose [state] backend = redis keeps presence, unread counts, the duplicate filter,
held messages and notified marks in a redis-server this module starts: the same
events must give exactly the same notifications as with the memory backend. (The
validation class, which routes nothing, is left to test_rooms.py.)
"""

import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_rooms  # noqa: E402
from fixtures import RedisServer  # noqa: E402

HAVE_REDIS = shutil.which("redis-server") is not None
SERVER = None


def setUpModule():
    global SERVER
    test_rooms.setUpModule()
    if HAVE_REDIS:
        SERVER = RedisServer().start()


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()


class RedisState:
    """Puts a class's room state in the module's redis-server, under a prefix of its own."""

    @classmethod
    def base_config(cls):
        config = super().base_config()
        config["redis"] = {"address": SERVER.address, "reconnect_max": "300ms"}
        config["state"] = {"backend": "redis", "prefix": "%s-%s:" % (cls.__name__,
                                                                     harness.uid())}
        return config

    @classmethod
    def start_and_wait(cls, daemon):
        """Start; wait until /readyz says the state is ready too."""
        daemon.start()
        deadline = time.monotonic() + 10
        while daemon.request("GET", "/readyz", key=None)[0] != 200:
            if time.monotonic() > deadline:
                raise AssertionError("not ready:\n" + daemon.log_text()[-4000:])
            time.sleep(0.02)


# The classes of test_rooms.py that route, each with its room state in Redis.
for _name, _cls in vars(test_rooms).items():
    if (isinstance(_cls, type) and issubclass(_cls, test_rooms.RoomsCase) and
            _cls is not test_rooms.RoomsCase):
        globals()[_name] = unittest.skipUnless(HAVE_REDIS, "redis-server is not installed")(
            type(_name, (RedisState, _cls), {"__module__": __name__}))
del _name, _cls


if __name__ == "__main__":
    harness.main()
