"""arq's enqueue and claim, each in ONE Redis round trip (Lua), with arq's own keys and format.

arq enqueues with WATCH / EXISTS / MULTI…EXEC (three round trips) and claims each job it starts
with WATCH / EXISTS / ZSCORE / MULTI…EXEC (four, one job at a time). At hundreds of top-ups a
second those round trips were a quarter of the worker's CPU (docs/BENCHMARKS.md). These scripts do
the same checks atomically, so the semantics are arq's: a job id that exists (or has a result) is
not enqueued again; a job is started by one worker only, marked in progress for
``in_progress_timeout`` so a dead worker's job is re-run after it. Keys and the serialised job are
arq's (``arq.constants``, ``arq.jobs.serialize_job``), so plain arq reads what these write; the
pinned arq range in pyproject.toml is the one these were checked against
(tests/lifecycle exercises both on every run).
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

from core.redis_pipeline import Lua

_ENQUEUE = Lua("""
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('PSETEX', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
return 1
""")

_CLAIM = Lua("""
local out, n, limit, now = {}, 0, tonumber(ARGV[3]), tonumber(ARGV[1])
for i = 5, #ARGV do
  if n >= limit then break end
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    local key = ARGV[4] .. id
    if redis.call('EXISTS', key) == 0 then
      redis.call('PSETEX', key, ARGV[2], '1')
      n = n + 1
      out[#out + 1] = id
      out[#out + 1] = score
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


async def claim(
    redis: ArqRedis, *, queue: str, job_ids: list[bytes], limit: int, in_progress_ms: int
) -> list[tuple[str, int]]:
    """Mark up to ``limit`` due jobs of ``job_ids`` in progress; (job id, score) of each."""
    if not job_ids or limit <= 0:
        return []
    found = await _CLAIM(
        redis, [queue], [timestamp_ms(), in_progress_ms, limit, in_progress_key_prefix, *job_ids]
    )
    return [(found[i].decode(), int(float(found[i + 1]))) for i in range(0, len(found), 2)]
