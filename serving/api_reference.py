"""docs/api.md, rendered from the OpenAPI document (serving.openapi.SPEC), so the reference cannot
drift from what the app serves at /v1/openapi.json:

    python -m serving.api_reference > docs/api.md      (tests/test_docs.py checks it is current)
"""

from __future__ import annotations

from typing import Any

from serving.openapi import SPEC

HEADER = """# API reference

Generated from the OpenAPI document the server publishes at `/v1/openapi.json`
(`python -m serving.api_reference > docs/api.md`; a test fails when this page is stale). The
walk-through in [integration.md](integration.md) shows the calls in order with real responses.
"""


def render(spec: dict[str, Any] = SPEC) -> str:
    parts = [HEADER, f"OpenAPI {spec['openapi']}, {spec['info']['title']} "
                     f"{spec['info']['version']}.\n"]
    parts.append("| method | path | what |\n|---|---|---|")
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            parts.append(f"| {method.upper()} | `{path}` | {operation.get('summary', '')} |")
    parts.append("")
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            parts.append(_operation(method, path, operation))
    parts.append("## Schemas\n")
    for name, schema in spec["components"]["schemas"].items():
        parts.append(_schema(name, schema))
    return "\n".join(parts).rstrip() + "\n"


def _operation(method: str, path: str, operation: dict) -> str:
    lines = [f"## {method.upper()} `{path}`\n", f"**{operation.get('summary', '')}**\n"]
    if operation.get("description"):
        lines.append(operation["description"] + "\n")
    parameters = operation.get("parameters", [])
    if parameters:
        lines.append("| parameter | in | type | required | description |\n|---|---|---|---|---|")
        for p in parameters:
            lines.append(f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | "
                         f"{'yes' if p.get('required') else 'no'} | "
                         f"{_cell(p.get('description', ''))} |")
        lines.append("")
    body = operation.get("requestBody")
    if body:
        schema = body["content"]["application/json"]["schema"]
        lines.append(f"Request body: {_type(schema)}"
                     f"{' (required)' if body.get('required') else ''}.\n")
    lines.append("| status | body | meaning |\n|---|---|---|")
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {}).get("application/json", {})
        body_type = _type(content["schema"]) if "schema" in content else "-"
        lines.append(f"| {status} | {body_type} | {_cell(response.get('description', ''))} |")
    roles = operation.get("x-roles", [])
    lines.append("\nWho may call it: " + (", ".join(
        "a customer token (its own customer)" if r == "customer" else f"{r} API key"
        for r in roles) or "anyone (public)") + ".")
    return "\n".join(lines) + "\n"


def _schema(name: str, schema: dict) -> str:
    lines = [f"### {name}\n"]
    if schema.get("description"):
        lines.append(schema["description"] + "\n")
    properties = schema.get("properties")
    if not properties:
        return "\n".join([*lines, f"{_type(schema)}\n"])
    required = set(schema.get("required", []))
    lines.append("| field | type | required | description |\n|---|---|---|---|")
    for field, spec in properties.items():
        lines.append(f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | "
                     f"{_cell(spec.get('description', ''))} |")
    return "\n".join(lines) + "\n"


def _type(schema: dict) -> str:
    """A short type: a linked schema name, a type with its bounds, an enum, or a union."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    for union in ("oneOf", "anyOf"):
        if union in schema:
            return " or ".join(_type(s) for s in schema[union])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    bounds = [f"{label} {schema[key]}" for key, label in (
        ("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("minLength", "length >="),
        ("maxLength", "length <="), ("maxItems", "items <=")) if key in schema]
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


if __name__ == "__main__":
    print(render(), end="")
