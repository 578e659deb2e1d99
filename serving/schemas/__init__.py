"""What the API's bodies are, declared once as pydantic models: requests.py is what clients send
(the views validate with these), responses.py what they get back. serving/openapi.py generates
the document's components from both, so the document cannot drift from the validation."""

from __future__ import annotations

from typing import Any

from pydantic import Field


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent(description: str | None = None, **constraints: Any) -> Any:
    """An optional field that is left out when it has no value: a request may not send it as
    null, and a response does not."""
    return Field(None, description=description, json_schema_extra=_no_default, **constraints)
