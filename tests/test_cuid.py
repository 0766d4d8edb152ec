"""Ids in Prisma's cuid() format: shape, uniqueness across processes, creation order."""

from __future__ import annotations

import re
import subprocess
import sys

from prisma_compat import cuid, is_cuid

CUID = re.compile(r"^c[0-9a-z]{24}$")


def test_ids_have_the_prisma_cuid_shape() -> None:
    for _ in range(1000):
        value = cuid()
        assert CUID.match(value), value
        assert is_cuid(value)


def test_a_million_ids_do_not_collide() -> None:
    ids = [cuid() for _ in range(1_000_000)]
    assert len(set(ids)) == len(ids)


def test_ids_made_in_sequence_sort_in_creation_order() -> None:
    ids = [cuid() for _ in range(200_000)]  # wraps-free or not, order must hold
    assert ids == sorted(ids)


def test_ids_from_several_processes_do_not_collide() -> None:
    script = "from prisma_compat import cuid\nfor _ in range(50_000): print(cuid())"
    workers = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    ids: list[str] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        ids.extend(out.split())
    assert len(ids) == 200_000
    assert len(set(ids)) == len(ids)


def test_is_cuid_rejects_other_ids() -> None:
    assert not is_cuid("")
    assert not is_cuid("clxyz")
    assert not is_cuid("C" + "a" * 24)
    assert not is_cuid("x" + "a" * 24)
    assert not is_cuid("550e8400-e29b-41d4-a716-446655440000")
