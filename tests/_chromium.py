"""The ``chromium`` fixture for tests that render pages in headless Chromium: the path to
/usr/bin/chromium; skipped where it is absent, except under CI (CI=true), where a missing
Chromium fails the test, so the dashboard tests cannot pass by skipping (.ci/run installs it)."""
import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
HINT = "apt-get install -y chromium chromium-driver"


@pytest.fixture
def chromium():
    found = shutil.which(CHROMIUM)
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"chromium is missing under CI=true ({HINT}; .ci/run installs it)")
    pytest.skip(f"chromium absent: {HINT}")
