"""What happens to a top-up, chosen by the recipient number's last digit (then by the random knobs).

The table below is the one the docs and ``airgate sandbox --help`` show; keep them in step.
"""

from __future__ import annotations

import random
from enum import StrEnum

from sandbox.config import SandboxConfig


class Outcome(StrEnum):
    SUCCEED = "succeed"  # SUCCESSFUL at once
    DECLINE = "decline"  # 400, recorded as FAILED
    # PROCESSING; the answer is held hang_s; SUCCESSFUL (or REFUNDED) settle_s after arrival
    HANG_THEN_SUCCEED = "hang_then_succeed"
    HANG_THEN_FAIL = "hang_then_fail"
    ERROR_ONCE = "error_once"  # 503 for the first request of a reference, not recorded
    SLOW = "slow"  # SUCCESSFUL, answered after slow_ms
    ERROR = "error"  # 503 from error_rate, not recorded


BY_LAST_DIGIT: dict[str, Outcome] = {
    "1": Outcome.DECLINE,
    "2": Outcome.HANG_THEN_SUCCEED,
    "3": Outcome.HANG_THEN_FAIL,
    "4": Outcome.ERROR_ONCE,
    "5": Outcome.SLOW,
}

RULES_TEXT = """\
Outcome by the recipient number's last digit:
  ...1  declined: 400 TRANSACTION_CANNOT_BE_PROCESSED_AT_THE_MOMENT, recorded as FAILED
  ...2  times out, then succeeds: PROCESSING, the answer is held --hang-s,
        SUCCESSFUL --settle-s after the request
  ...3  times out, then fails: as ...2 but it ends REFUNDED (funds returned)
  ...4  503 once: the first request of a customIdentifier gets 503 and is not
        recorded; the next one succeeds
  ...5  slow: SUCCESSFUL, answered after --slow-ms
  other SUCCESSFUL at once
Then, for the other digits, --error-rate (503, not recorded) and --decline-rate
(declined, recorded FAILED) draw from one RNG seeded by --seed. A repeated
customIdentifier is never delivered twice: 200 with the original transaction.
DT One's face (/v1) follows the same digits in its own words: POST
/v1/async/transactions answers 201 CONFIRMED and the transaction then reads
COMPLETED (other, ...5), DECLINED-OPERATOR-CURRENTLY-UNAVAILABLE (...1), or
SUBMITTED until --settle-s after the request, then COMPLETED (...2) or
DECLINED (...3); ...4 is one 503; a repeated external_id is refused 1007001."""


def choose(
    e164: str, *, config: SandboxConfig, rng: random.Random, errored_before: bool
) -> Outcome:
    """The outcome of a first request for a reference (repeats never reach the rules)."""
    rule = BY_LAST_DIGIT.get(e164[-1], Outcome.SUCCEED) if config.digit_rules else Outcome.SUCCEED
    if rule is Outcome.ERROR_ONCE:
        return Outcome.SUCCEED if errored_before else Outcome.ERROR_ONCE
    if rule is not Outcome.SUCCEED:
        return rule
    if config.error_rate and rng.random() < config.error_rate:
        return Outcome.ERROR
    if config.decline_rate and rng.random() < config.decline_rate:
        return Outcome.DECLINE
    return Outcome.SUCCEED
