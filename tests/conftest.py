"""Shared fixtures and helpers live in tests/support/ (registered here), so no test file
imports another one."""
import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

pytest_plugins = ["support.fixtures", "support.web", "support.postgres"]
