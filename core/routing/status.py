"""What an operator is shown of the aggregator accounts (``airgate provider status``, /metrics):
per account its price, float and health, and per operator its breaker, counts, latency and last
error, as every worker recorded them in Redis."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core.redis import Client
from core.routing import floats, health
from core.routing.health import Breaker
from core.settings import Settings

RESULTS = tuple(result.value for result in health.Result)


@dataclass(frozen=True, slots=True)
class OperatorHealth:
    operator: str
    breaker: str  # closed | open | half_open
    counts: dict[str, int]  # per health.Result: ok, slow, refused, error, unknown
    latency_ms: float | None  # average of the recent sends (EWMA)
    failures_in_a_row: int
    last_error: str
    last_error_ms: int | None
    changed_ms: int | None  # when the breaker last changed


@dataclass(frozen=True, slots=True)
class AccountStatus:
    name: str
    adapter: str
    price_bps: int
    low_float_minor: int
    health: str  # ok | degraded (some operator's breaker not closed) | open (every one open)
    float: floats.Float
    operators: list[OperatorHealth]

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["float"] = self.float.as_dict()
        return data


async def read(settings: Settings, redis: Client) -> list[AccountStatus]:
    recorded = await health.read_all(redis)
    out = []
    for account in settings.accounts():
        operators = [
            _operator(operator, raw)
            for (name, operator), raw in sorted(recorded.items())
            if name == account.name
        ]
        out.append(
            AccountStatus(
                name=account.name,
                adapter=account.adapter,
                price_bps=account.price_bps,
                low_float_minor=account.low_float_minor,
                health=_overall([op.breaker for op in operators]),
                float=await floats.read(redis, account.name),
                operators=operators,
            )
        )
    return out


def _overall(breakers: list[str]) -> str:
    if breakers and all(b == Breaker.OPEN for b in breakers):
        return "open"
    return "ok" if all(b == Breaker.CLOSED for b in breakers) else "degraded"


def _operator(operator: str, raw: dict[str, str]) -> OperatorHealth:
    def number(name: str) -> int | None:
        return int(raw[name]) if raw.get(name) else None

    return OperatorHealth(
        operator=operator,
        breaker=raw.get("state", Breaker.CLOSED),
        counts={result: int(raw.get(result, 0)) for result in RESULTS},
        latency_ms=float(raw["latency_ms"]) if raw.get("latency_ms") else None,
        failures_in_a_row=int(raw.get("fails", 0)),
        last_error=raw.get("last_error", ""),
        last_error_ms=number("last_error_ms"),
        changed_ms=number("changed_ms"),
    )
