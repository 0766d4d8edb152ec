"""The api fixture of the chat tests, shared."""

from tests.chat.conftest import api  # noqa: F401 (a fixture, registered by import)
