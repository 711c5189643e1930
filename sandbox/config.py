"""The sandbox's knobs: one frozen value built by the CLI (or a test) and handed to ``build_app``.

Nothing here reads the environment; ``airgate sandbox`` maps its flags and ``AIRGATE_SANDBOX_*``
variables onto these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    # The credentials it accepts; the defaults match core's provider_* and sms_* defaults.
    client_id: str = "sandbox"
    client_secret: str = field(default="sandbox", repr=False)
    # The DT One face's HTTP Basic credentials; the defaults match core's dtone_api_* defaults.
    dtone_api_key: str = field(default="sandbox", repr=False)
    dtone_api_secret: str = field(default="sandbox", repr=False)
    sms_username: str = "sandbox"
    sms_api_key: str = field(default="sandbox", repr=False)
    # A token is refused (401 TOKEN_EXPIRED) this long after it was issued.
    token_ttl_s: float = 3600.0
    # Added to every POST /topups answer (the benchmark runs with 0 and 200).
    latency_ms: int = 0
    # Random outcomes on top of the last-digit rules, drawn from one seeded RNG.
    decline_rate: float = 0.0  # a recorded FAILED transaction, answered 400
    error_rate: float = 0.0  # a 503, nothing recorded
    seed: int | None = None
    # Last-digit rules (docs/PROVIDERS.md); off for load runs on arbitrary numbers.
    digit_rules: bool = True
    # …2/…3: the answer is held this long, longer than the client's time-out (10 s by default) …
    hang_s: float = 15.0
    # … while the transaction leaves PROCESSING this long after it arrived.
    settle_s: float = 2.0
    # …5: a success answered this late.
    slow_ms: int = 3000
    # Account balance in KES cents: KES 100 million, enough for any benchmark run.
    initial_balance_minor: int = 10_000_000_000
    # What the account pays per top-up: face value less this discount (200 bp = 2 %).
    discount_bps: int = 200

    def __post_init__(self) -> None:
        for name in ("decline_rate", "error_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        for name in ("token_ttl_s", "hang_s", "settle_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.latency_ms < 0 or self.slow_ms < 0:
            raise ValueError("latency_ms and slow_ms must not be negative")
        if self.initial_balance_minor < 0:
            raise ValueError("initial_balance_minor must not be negative")
        if not 0 <= self.discount_bps <= 10_000:
            raise ValueError("discount_bps must be between 0 and 10000")
