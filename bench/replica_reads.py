"""Conversation-list throughput of one serve process: reads on the primary (no replicas)
against reads on a streaming replica (DATABASE_REPLICA_URLS) on the same machine, twice each,
1,000 requests at 16 at once. Both servers share the machine's cores, so this shows what
routing costs (a primary-key lookup of the caller's write position per read), not what a
replica on a machine of its own adds. Run: uv run python -m bench.replica_reads"""

import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from prisma_compat import cuid
from tests.chat.test_answers_across_processes import serving
from tests.fakes.llm import FakeLLM
from tests.replication import ReplicatedPostgres, binaries_for
from tests.test_replicas import _user


async def run(url, headers, n=1000, conc=16):
    lat = []
    async with httpx.AsyncClient(timeout=30, headers=headers) as c:
        for _ in range(50):
            await c.get(url + "/api/conversations")
        q = asyncio.Queue()
        for _ in range(n):
            q.put_nowait(1)

        async def worker():
            while not q.empty():
                q.get_nowait()
                t = time.perf_counter()
                r = await c.get(url + "/api/conversations")
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        el = time.perf_counter() - t0
    lat.sort()
    return n / el, lat[int(len(lat) * 0.95)] * 1000


async def compare(pg: ReplicatedPostgres, fake: FakeLLM) -> None:
    """Two rounds of: one process without replicas, one with the replica."""
    uid, headers = await _user(pg)
    for i in range(50):
        await pg.on_primary(
            'INSERT INTO conversations (id, title, "userId", "updatedAt") '
            "VALUES ($1, $2, $3, now())",
            cuid(), f"c{i}", uid,
        )  # fmt: skip
    await pg.wait_replayed()
    replica = {"DATABASE_REPLICA_URLS": pg.replica_url}
    for label, env in [("primary", {}), ("replica", replica)] * 2:
        folder = Path(tempfile.mkdtemp(prefix="replica-bench-"))
        with serving(pg.primary_url, fake, folder, count=1, METRICS_ENABLED="true", **env) as [s]:
            await asyncio.sleep(1)
            rps, p95 = await run(s.url, headers)
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(s.url + "/metrics")).text
            routed = [
                line
                for line in metrics.splitlines()
                if line.startswith("chatwithme_db_routed_reads_total")
            ]
            print(f"{label}: {rps:.0f} req/s, p95 {p95:.1f} ms {routed}")


def main() -> None:
    bindir, why = binaries_for(None)
    if bindir is None:
        raise SystemExit(why)
    pg = ReplicatedPostgres(bindir).start()
    fake = FakeLLM().start()
    try:
        asyncio.run(compare(pg, fake))
    finally:
        pg.close()
        fake.stop()


if __name__ == "__main__":
    main()
