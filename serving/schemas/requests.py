"""Request bodies. Strict: a JSON string is not a number and true is not 1, and a field the
endpoint does not know is refused (a misspelt field must not be silently ignored). Limits that
depend on the deployment (a token's longest life, the taxonomy's categories) are checked by the
view after these."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from recommender.consent import LEVELS
from serving.records.audit import CASE_STATUSES, FEEDBACK_KINDS, MAX_TEXT
from serving.records.consent import MAX_ID_LENGTH
from serving.records.controls import KINDS as CONTROL_KINDS
from serving.schemas import absent

INTERACTION_KINDS = ("purchase", "click", "rating")
LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z: beyond it, not a time but a mistake
MAX_ID = 256  # offer, request and event ids
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]+$"  # no control characters: ids end up in logs and pages

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=PRINTABLE)]


def _integral(value: object) -> object:
    """JSON Schema's integer is any number without a fraction: 24.0 is 24 (true is not)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_integral)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class RequestBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ConsentUpdate(RequestBody):
    allowed: list[str] = Field(description="Data categories that may be used.")
    level: Literal[LEVELS]
    expected_version: Integer = absent(
        "Apply only if the record is still at this version (0: no record yet); otherwise 409.",
        ge=0)


class Interaction(RequestBody):
    offer_id: Id = Field(description="An offer of the current catalog.")
    kind: Literal[INTERACTION_KINDS]
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)
    timestamp: (Annotated[Integer, Field(ge=0, le=LATEST_TIMESTAMP)]
                | Annotated[str, Field(json_schema_extra={"format": "date-time"})]) = absent(
        "Unix seconds or ISO 8601 with a zone, up to the year 9999; default now.")
    event_id: str = absent(
        "The client's id for this event: a retry with the same id is recorded once (200, "
        "duplicate: true).", min_length=1, max_length=128, pattern=PRINTABLE)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _unix_seconds(cls, raw: object) -> object:
        """Unix seconds, from seconds or from an ISO 8601 time with a zone."""
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= LATEST_TIMESTAMP:
            return raw
        if isinstance(raw, str):
            try:
                moment = datetime.fromisoformat(raw)
            except ValueError:
                moment = None
            if moment is not None and moment.tzinfo is not None and (
                    0 <= moment.timestamp() <= LATEST_TIMESTAMP):
                return int(moment.timestamp())
        raise ValueError("timestamp must be unix seconds or an ISO 8601 time with a zone, "
                         "between 1970 and 9999")


class TokenRequest(RequestBody):
    ttl_seconds: Integer = absent(
        "The token's life; default an hour, at most TRUSTREC_TOKEN_MAX_SECONDS.", ge=1)


class Feedback(RequestBody):
    request_id: Id = Field(description="The served response's request id.")
    offer_id: Id = Field(description="An offer of that response.")
    kind: Literal[FEEDBACK_KINDS]
    text: Text = absent("Required for report: what is wrong with the offer.")
    customer_id: str = absent(
        "Required with an API key; with a customer token, the token's customer.",
        min_length=1, max_length=MAX_ID_LENGTH, pattern=PRINTABLE)


class Control(RequestBody):
    kind: Literal[CONTROL_KINDS] = Field(description=(
        "not_relevant: leave this offer out; see_less: place offers of this category lower; "
        "leave_out: do not use this past purchase."))
    value: Id = Field(description="An offer id (not_relevant, leave_out) or a category "
                                  "(see_less).")


class AttributesUpdate(RequestBody):
    values: dict[Annotated[str, Field(min_length=1, max_length=64)],
                 Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)] | None
                 ] = Field(description=(
        "Attribute -> the correct value, or null to have none used; attributes not named are "
        "left as they are."), max_length=64)


class Contact(RequestBody):
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)] = Field(
        description="What the customer would like to talk about.")


class CaseUpdate(RequestBody):
    status: Literal[CASE_STATUSES]
    note: Text = absent()




AttributeName = Annotated[str, Field(min_length=1, max_length=64, pattern=PRINTABLE)]
AttributeValue = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]


class NewOffer(RequestBody):
    offer_id: Id = Field(description="Not in the catalog yet (409 otherwise).")
    attributes: dict[AttributeName, AttributeValue] = Field(
        max_length=32, description="Offer attributes of the catalog (title, category, ...): the "
        "offer is scored like the trained offers sharing its values until a model is trained "
        "with it. An attribute the catalog does not have is a 400.")


class Availability(RequestBody):
    available: bool = Field(description="false: never shown anywhere from the next request on.")


MODELS = (ConsentUpdate, Interaction, TokenRequest, Feedback, CaseUpdate, Control,
          AttributesUpdate, Contact, NewOffer, Availability)
