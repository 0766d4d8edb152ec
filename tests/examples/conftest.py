import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "example: the Next.js example in a real browser (run alone: pytest -m example -n 0)",
    )
