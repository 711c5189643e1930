"""The OpenAPI 3.1 document, generated from the endpoints' own declarations and models (the ones
that validate requests), and a reference page rendered from it on the server (no script, no CDN:
it reads without the internet).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.endpoint import BASE, IDEMPOTENCY_HEADER, Endpoint
from api.models import Problem
from api.problems import PROBLEM_JSON, TITLES

REF = "#/components/schemas/{model}"
# Every endpoint may answer these, whatever it does.
COMMON_ERRORS = (401, 403, 429, 503)


def document(endpoints: Iterable[Endpoint], *, version: str) -> dict[str, Any]:
    endpoints = list(endpoints)
    models: set[type[BaseModel]] = {Problem}
    for e in endpoints:
        models.update(m for m in (e.response, e.body) if m is not None)
    keyed = [(m, "serialization" if m is not Problem else "validation") for m in models]
    keyed += [(e.body, "validation") for e in endpoints if e.body is not None]
    mapping, top = models_json_schema(
        sorted(set(keyed), key=lambda pair: (pair[0].__name__, pair[1])),  # type: ignore[arg-type]
        ref_template=REF,
    )
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(BASE + e.path, {})[e.method.lower()] = _operation(e, mapping)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AirGate reseller API",
            "version": version,
            "description": "Top-ups, stock and retailers for resellers' own systems. "
            "Amounts are integers in minor units; errors are application/problem+json.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "agk_…"}
            },
        },
    }


def _ref(mapping: dict[Any, Any], model: type[BaseModel], mode: str) -> dict[str, Any]:
    return dict(mapping[(model, mode)])


def _operation(e: Endpoint, mapping: dict[Any, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": e.operation_id,
        "summary": e.summary,
        "tags": [e.tag],
        "x-scope": e.scope.value,
        "x-roles": sorted(e.roles),
        "description": (e.description + "\n\n" if e.description else "")
        + f"Scope `{e.scope.value}`; for a {' or '.join(sorted(e.roles))} key.",
        "parameters": _parameters(e),
        "responses": _responses(e, mapping),
    }
    if e.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(mapping, e.body, "validation")}},
        }
    return op


def _parameters(e: Endpoint) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for where, model in (("path", e.path_params), ("query", e.query)):
        if model is None:
            continue
        schema = model.model_json_schema(by_alias=True, ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {"name": name, "in": where, "required": name in required}
            param["schema"] = {k: v for k, v in prop.items() if k not in ("title", "description")}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if e.idempotent:
        params.append(
            {
                "name": IDEMPOTENCY_HEADER,
                "in": "header",
                "required": True,
                "description": "Your unique id for this request: the same key and body return "
                "the stored response; the same key with another body is a 409.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[!-~]+$",
                },
            }
        )
    return params


def _responses(e: Endpoint, mapping: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if e.response is not None:
        content: dict[str, Any] = {
            "application/json": {"schema": _ref(mapping, e.response, "serialization")}
        }
        for media in e.alternatives:
            content[media] = {"schema": {"type": "string"}}
        for status in (e.status, *e.also):
            described = {201: "Created", 202: "Accepted"}.get(status, "Done")
            out[str(status)] = {"description": described, "content": content}
    problem = {PROBLEM_JSON: {"schema": _ref(mapping, Problem, "validation")}}
    statuses = set(COMMON_ERRORS) | set(e.errors) | {422}
    if e.body is not None:
        statuses |= {400, 413, 415}
    if e.idempotent:
        statuses |= {409}
    for status in sorted(statuses):
        out[str(status)] = {"description": TITLES.get(status, "Error"), "content": problem}
    return out


STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    "code,pre{font:13px ui-monospace,monospace;background:#f4f4f4}"
    "pre{padding:.6em;overflow:auto}"
    "h3{margin-top:2em;border-top:1px solid #ccc;padding-top:1em}"
    ".m{font-weight:bold;color:#064}table{border-collapse:collapse}"
    "td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}"
)


def page(doc: dict[str, Any]) -> str:
    """The reference as one HTML page: each operation, its parameters, body and answers, the
    schemas as JSON. No script and nothing fetched: it renders offline."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{html.escape(doc['info']['title'])}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(doc['info']['title'])} ",
        f"<small>{html.escape(doc['info']['version'])}</small></h1>",
        f"<p>{html.escape(doc['info']['description'])}</p>",
        "<p>Authenticate with <code>Authorization: Bearer agk_…</code>. Every POST needs an "
        "<code>Idempotency-Key</code>. The machine-readable document: "
        '<a href="openapi.json">openapi.json</a>.</p><h2>Operations</h2><ul>',
    ]
    ops = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    for path, method, op in ops:
        parts.append(
            f'<li><a href="#{op["operationId"]}"><span class=m>{method.upper()}</span> '
            f"{html.escape(path)}</a>: {html.escape(op['summary'])}</li>"
        )
    parts.append("</ul>")
    for path, method, op in ops:
        parts.append(_op_html(path, method, op))
    parts.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts.append(f'<h4 id="schema-{html.escape(name)}">{html.escape(name)}</h4>')
        parts.append(f"<pre>{html.escape(json.dumps(schema, indent=2))}</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def _op_html(path: str, method: str, op: dict[str, Any]) -> str:
    out = [
        f'<h3 id="{op["operationId"]}"><span class=m>{method.upper()}</span> ',
        f"{html.escape(path)}</h3>",
        f"<p>{html.escape(op['summary'])}. {html.escape(op['description'])}</p>",
    ]
    if op["parameters"]:
        out.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th></tr>")
        for p in op["parameters"]:
            out.append(
                f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                f"<td>{'yes' if p['required'] else 'no'}</td>"
                f"<td><code>{html.escape(json.dumps(p['schema']))}</code></td></tr>"
            )
        out.append("</table>")
    if "requestBody" in op:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        out.append(f"<p>Body (JSON): <code>{html.escape(json.dumps(schema))}</code></p>")
    answers = ", ".join(
        f"{code} {html.escape(r['description'])}" for code, r in op["responses"].items()
    )
    out.append(f"<p>Answers: {answers}.</p>")
    return "".join(out)
