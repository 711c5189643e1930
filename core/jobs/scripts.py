"""arq's enqueue and claim, each in ONE Redis round trip (Lua), with arq's own keys and format.

arq enqueues with WATCH / EXISTS / MULTI…EXEC (three round trips) and claims each job it starts
with WATCH / EXISTS / ZSCORE / MULTI…EXEC (four, one job at a time). At hundreds of top-ups a
second those round trips were a quarter of the worker's CPU (docs/BENCHMARKS.md). These scripts do
the same checks atomically, so the semantics are arq's: a job id that exists (or has a result) is
not enqueued again; a job is started by one worker only, marked in progress for
``in_progress_timeout`` so a dead worker's job is re-run after it.

Keys and the serialised job are arq's (``arq.constants``, ``arq.jobs.serialize_job``), so plain
arq reads what these write; the pinned arq range in pyproject.toml is the one these were checked
against (tests/lifecycle exercises both on every run).

A claim also counts how often the job id was claimed (``airgate:claims:{id}``, kept an hour), and
may wait (WAIT) until replicas have the claim before the job starts: a re-run after the primary
failed over (the claim replicated, the rest of the run perhaps not) then knows it is one, even if
arq's own try count (written after the claim, not waited for) was lost with the old primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from core.redis_pipeline import Lua

CLAIMS_KEY_PREFIX = "airgate:claims:"
# A re-run comes after the in-progress mark lapses (a job's time-out + 10 s) once a worker is up;
# an hour of keys at 5 million jobs a day is ~200,000 of them (~20 MB).
CLAIMS_TTL_MS = 3_600_000

_ENQUEUE = Lua("""
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return 1
""")

_CLAIM = Lua("""
local out, n, limit, now = {}, 0, tonumber(ARGV[3]), tonumber(ARGV[1])
for i = 7, #ARGV do
  if n >= limit then break end
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    local key = ARGV[4] .. id
    if redis.call('EXISTS', key) == 0 then
      redis.call('PSETEX', key, ARGV[2], '1')
      local claims = redis.call('INCR', ARGV[5] .. id)
      redis.call('PEXPIRE', ARGV[5] .. id, ARGV[6])
      n = n + 1
      out[#out + 1] = id
      out[#out + 1] = score
      out[#out + 1] = claims
    end
  end
end
return out
""")


async def enqueue(
    redis: ArqRedis,
    *,
    queue: str,
    function: str,
    args: tuple[Any, ...],
    job_id: str,
    defer_ms: int = 0,
) -> bool:
    """``ArqRedis.enqueue_job`` in one round trip; False if the job id exists or has a result."""
    now = timestamp_ms()
    score = now + defer_ms
    expires_ms = defer_ms + redis.expires_extra_ms
    job = serialize_job(function, args, {}, None, now, serializer=redis.job_serializer)
    keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue]
    return bool(await _ENQUEUE(redis, keys, [job, expires_ms, job_id, score]))


@dataclass(frozen=True, slots=True)
class Claimed:
    job_id: str
    score: int
    claims: int  # 1: the first run of this job id; more: a re-run, whatever arq's try count says


@dataclass(frozen=True, slots=True)
class Claim:
    jobs: list[Claimed]
    replicated: bool  # the replicas asked for acknowledged the claim (or none were asked for)


async def claim(
    redis: ArqRedis,
    *,
    queue: str,
    job_ids: list[bytes],
    limit: int,
    in_progress_ms: int,
    replicas: int = 0,
    wait_ms: int = 200,
) -> Claim:
    """Mark up to ``limit`` due jobs of ``job_ids`` in progress; with ``replicas``, then wait
    (at most ``wait_ms``) until that many replicas have the marks."""
    if not job_ids or limit <= 0:
        return Claim([], True)
    args: list[str | bytes | int] = [
        timestamp_ms(), in_progress_ms, limit, in_progress_key_prefix, CLAIMS_KEY_PREFIX,
        CLAIMS_TTL_MS, *job_ids,
    ]  # fmt: skip
    if not replicas:
        return Claim(_read(await _CLAIM(redis, [queue], args)), True)
    # WAIT counts the replicas holding this connection's writes: the claim's own connection.
    async with redis.client() as conn:
        jobs = _read(await _CLAIM(conn, [queue], args))
        acked = await conn.wait(replicas, wait_ms) if jobs else replicas
    return Claim(jobs, acked >= replicas)


def _read(found: list[bytes]) -> list[Claimed]:
    return [
        Claimed(found[i].decode(), int(float(found[i + 1])), int(found[i + 2]))
        for i in range(0, len(found), 3)
    ]
