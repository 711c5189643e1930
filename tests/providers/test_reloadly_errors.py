"""How every failure mode maps onto the error tree (core/errors.py, docs/PROVIDERS.md).

The aggregator here is a tiny fake *external* server, for shapes the sandbox never produces: broken
2xx bodies, a reset mid-answer, Reloadly's own duplicate refusal, assorted status codes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp import web

from core.errors import OutcomeUnknown, ProviderRejected, ProviderUnavailable
from core.providers.port import Outcome
from tests.e2e.conftest import free_port
from tests.providers.conftest import MakeProvider, Sandbox, order, serve

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TRANSACTION = {
    "transactionId": 77,
    "status": "SUCCESSFUL",
    "operatorTransactionId": "OP-1",
    "customIdentifier": "ref-1",
    "recipientPhone": "254712345670",
    "countryCode": "KE",
    "operatorId": 1,
    "operatorName": "Safaricom Kenya",
    "discount": 1,
    "requestedAmount": 50,
    "requestedAmountCurrencyCode": "KES",
    "deliveredAmount": 50,
    "deliveredAmountCurrencyCode": "KES",
    "transactionDate": "2026-05-02 10:35:00",
}


def fake(topups: Handler, report: Handler | None = None) -> web.Application:
    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": "t", "token_type": "Bearer", "expires_in": 60})

    async def no_report(_request: web.Request) -> web.Response:
        return web.json_response({"content": [], "totalElements": 0, "totalPages": 0})

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_post("/topups", topups)
    app.router.add_get("/topups/reports/transactions", report or no_report)
    return app


def answer(status: int, body: object = None, *, text: str | None = None) -> Handler:
    async def handler(_request: web.Request) -> web.Response:
        if text is not None:
            return web.Response(status=status, text=text)
        return web.json_response(body, status=status)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "text", "error"),
    [
        (200, None, "<html>oops</html>", OutcomeUnknown),  # 2xx, not JSON
        (200, {"status": "SUCCESSFUL"}, None, OutcomeUnknown),  # 2xx, fields missing
        (200, {**TRANSACTION, "status": "WEIRD"}, None, OutcomeUnknown),  # unknown status
        (200, {**TRANSACTION, "customIdentifier": "other"}, None, OutcomeUnknown),  # not ours
        (302, None, "", OutcomeUnknown),
        (400, {"errorCode": "INVALID_AMOUNT", "message": "no"}, None, ProviderRejected),
        (404, None, "Not Found", ProviderRejected),
        (429, {"errorCode": "TOO_MANY_REQUESTS"}, None, ProviderUnavailable),
        (500, None, "Internal Server Error", ProviderUnavailable),
        (502, None, "Bad Gateway", ProviderUnavailable),
    ],
)
async def test_send_answers_map_onto_the_error_tree(
    make_provider: MakeProvider,
    status: int,
    body: object,
    text: str | None,
    error: type[Exception],
) -> None:
    async with serve(fake(answer(status, body, text=text))) as url:
        adapter = await make_provider(url)
        with pytest.raises(error) as raised:
            await adapter.send_topup(order(0, "ref-1"))
    assert raised.value.provider == "reloadly"  # type: ignore[attr-defined]


async def test_a_good_answer_from_another_aggregator_is_read(make_provider: MakeProvider) -> None:
    iso_date = {**TRANSACTION, "transactionDate": "2026-05-02T10:35:00Z", "requestedAmount": "50"}
    async with serve(fake(answer(201, iso_date))) as url:
        adapter = await make_provider(url)
        tx = await adapter.send_topup(order(0, "ref-1"))
    assert (tx.outcome, tx.provider_ref) == (Outcome.DELIVERED, "77")
    assert tx.delivered_minor == 5_000
    assert tx.at == datetime(2026, 5, 2, 10, 35, tzinfo=UTC)


async def test_a_reset_mid_answer_is_an_unknown_outcome(make_provider: MakeProvider) -> None:
    async def reset(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        request.transport.close()  # the request arrived; the answer never will
        await asyncio.sleep(0.1)
        return web.Response()

    async with serve(fake(reset)) as url:
        adapter = await make_provider(url)
        with pytest.raises(OutcomeUnknown):
            await adapter.send_topup(order(0, "ref-1"))


async def test_a_refused_connection_is_unavailable(
    sandbox: Sandbox, make_provider: MakeProvider
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    # The token comes from the sandbox, the top-up goes nowhere: the send itself is refused.
    adapter = await make_provider(dead, auth_url=sandbox.url)
    with pytest.raises(ProviderUnavailable, match="not sent"):
        await adapter.send_topup(order(0, "ref-1"))
    with pytest.raises(ProviderUnavailable):
        await adapter.find(reference="ref-1", since=datetime.now(UTC))
    nowhere = await make_provider(dead)  # even the token cannot be had
    with pytest.raises(ProviderUnavailable):
        await nowhere.send_topup(order(0, "ref-1"))


async def test_reloadlys_duplicate_refusal_is_resolved_by_the_report(
    make_provider: MakeProvider,
) -> None:
    """Real Reloadly refuses a repeated customIdentifier; the original is the answer."""
    refusal = {"errorCode": "DUPLICATED_CUSTOM_IDENTIFIER", "message": "already used"}
    seen: list[str] = []

    async def report(request: web.Request) -> web.Response:
        seen.append(request.query["customIdentifier"])
        return web.json_response({"content": [TRANSACTION], "totalElements": 1, "totalPages": 1})

    async with serve(fake(answer(400, refusal), report)) as url:
        adapter = await make_provider(url)
        tx = await adapter.send_topup(order(0, "ref-1"))
    assert (tx.provider_ref, tx.outcome, seen) == ("77", Outcome.DELIVERED, ["ref-1"])


async def test_a_duplicate_refusal_without_the_original_is_unknown(
    make_provider: MakeProvider,
) -> None:
    refusal = {"errorCode": "DUPLICATED_CUSTOM_IDENTIFIER", "message": "already used"}
    async with serve(fake(answer(409, refusal))) as url:
        adapter = await make_provider(url)
        with pytest.raises(OutcomeUnknown, match="not in the report"):
            await adapter.send_topup(order(0, "ref-1"))


@pytest.mark.parametrize(
    "report",
    [
        answer(200, text="not json"),
        answer(200, {"content": "nope"}),
        answer(200, {"content": [{"status": "SUCCESSFUL"}]}),
        answer(503, text="down"),
        answer(400, {"errorCode": "INVALID_DATE", "message": "bad"}),  # a failed lookup, not a no
    ],
)
async def test_an_unreadable_report_makes_find_unavailable(
    make_provider: MakeProvider, report: Handler
) -> None:
    async with serve(fake(answer(500, text=""), report)) as url:
        adapter = await make_provider(url)
        with pytest.raises(ProviderUnavailable):
            await adapter.find(reference="ref-1", since=datetime.now(UTC))


async def test_a_read_that_times_out_is_unavailable_not_unknown(
    make_provider: MakeProvider,
) -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(60)  # never in time, however slow the client is scheduled
        return web.json_response({"content": [], "totalPages": 0})

    async with serve(fake(answer(500, text=""), slow)) as url:
        adapter = await make_provider(url, timeout_s=0.2)
        with pytest.raises(ProviderUnavailable):
            await adapter.find(reference="ref-1", since=datetime.now(UTC))
