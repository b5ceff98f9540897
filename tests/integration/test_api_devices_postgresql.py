"""test_api_devices.py's tests with the store on PostgreSQL: a throwaway cluster that this
file starts (harness.PostgresServer), a database per daemon; every test and assertion
as they are."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

harness.use_store("postgresql")
from test_api_devices import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    harness.main()
