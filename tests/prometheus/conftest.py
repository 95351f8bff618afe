# SPDX-License-Identifier: MIT
"""The node_exporter tests reuse tests/integration's harness, and skip as a
whole (exit 77, meson's SKIP) when node_exporter or promtool is missing."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

NODE_EXPORTER = os.environ.get("NODE_EXPORTER", "/usr/bin/prometheus-node-exporter")


def pytest_sessionstart(session):
    missing = [p for p in (NODE_EXPORTER, "promtool") if shutil.which(p) is None]
    if missing:
        pytest.exit(f"SKIP: {', '.join(missing)} not installed "
                    "(Debian: prometheus-node-exporter, prometheus)", returncode=77)
