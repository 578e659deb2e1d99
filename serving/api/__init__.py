"""The HTTP API's blueprints, versioned under /v1 (health and metrics at the root)."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from serving.api import (
        accountability,
        catalog,
        consent,
        controls,
        health,
        interactions,
        offers,
        openapi,
        related,
        tokens,
    )

    for module in (offers, consent, interactions, tokens, health, openapi, accountability,
                   controls, catalog, related):
        app.register_blueprint(module.bp)
