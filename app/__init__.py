"""ChatWithMe API: a Litestar backend for AI assistant chat apps."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chatwithme")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
