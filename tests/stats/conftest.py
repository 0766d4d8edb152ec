"""The signed-in client and row seeder of the search tests, shared."""

from tests.search.test_search import seeded  # noqa: F401 (a fixture, registered by import)
