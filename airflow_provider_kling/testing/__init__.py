"""Test DAGs that use this provider against the local fal emulator (see :mod:`.pytest_plugin`)."""

from __future__ import annotations
