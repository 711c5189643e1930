"""Keys, authentication, one endpoint, problems and the OpenAPI document, over HTTP."""

from __future__ import annotations

from core.models import Scope
from core.services import apikeys
from core.services.audit import Actor
from tests.api.conftest import RETAILER, Rig, auth

PROBLEM = "application/problem+json"


async def test_a_retailer_reads_its_balance(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ])
    response = await rig.client.get("/api/v1/balance", headers=auth(key))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["party_id"] == await rig.party_id(RETAILER)
    safaricom = next(line for line in body["stock"] if line["operator"] == "safaricom-ke")
    assert safaricom["available_minor"] == 500_000


async def test_no_key_a_wrong_key_and_a_revoked_key_are_401_problems(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ])
    for headers in ({}, {"Authorization": "Basic eDp5"}, auth("agk_" + "x" * 43), auth(key[:-1])):
        response = await rig.client.get("/api/v1/balance", headers=headers)
        assert response.status == 401
        assert response.content_type == PROBLEM
        assert (await response.json())["type"] == "urn:airgate:problem:unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await apikeys.revoke(rig.core, actor=Actor.cli(), prefix=key[:12])
    response = await rig.client.get("/api/v1/balance", headers=auth(key))
    assert response.status == 401


async def test_a_key_without_the_scope_is_403(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.TOPUP])
    response = await rig.client.get("/api/v1/balance", headers=auth(key))
    assert response.status == 403
    assert (await response.json())["type"] == "urn:airgate:problem:insufficient_scope"


async def test_validation_names_the_field_and_an_unknown_path_is_a_problem(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ])
    response = await rig.client.get("/api/v1/operators?country=Kenya", headers=auth(key))
    assert response.status == 422
    body = await response.json()
    assert body["type"] == "urn:airgate:problem:validation"
    assert body["errors"][0]["field"] == "query.country"
    response = await rig.client.get("/api/v1/nothing-here", headers=auth(key))
    assert response.status == 404
    assert response.content_type == PROBLEM


async def test_operator_lookup_masks_the_number(rig: Rig) -> None:
    key = await rig.key(RETAILER, [Scope.READ])
    response = await rig.client.get(
        "/api/v1/operator-lookup", params={"msisdn": "0712345670"}, headers=auth(key)
    )
    assert response.status == 200, await response.text()
    text = await response.text()
    assert "712345670" not in text
    assert (await response.json())["operator"]["code"] == "safaricom-ke"


async def test_openapi_document_and_docs_page(rig: Rig) -> None:
    response = await rig.client.get("/api/v1/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/balance" in doc["paths"]
    page = await rig.client.get("/api/v1/docs")
    assert page.status == 200
    html = await page.text()
    assert "/api/v1/balance" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
