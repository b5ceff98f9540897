"""test_state_redis.py's tests with one registry on PostgreSQL shared by every instance:
a throwaway cluster that this file starts (harness.PostgresServer), one database for the
daemons of a class, each device and membership registered once; every test and
assertion as they are."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

harness.use_store("postgresql")
from test_state_redis import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    harness.main()
