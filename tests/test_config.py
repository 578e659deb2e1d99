"""The settings object: environment, then the mapping given to create_app; errors name the
variable; production's checks only where serving."""

from __future__ import annotations

import pytest

from serving.auth import ConfigError, hash_key
from serving.config import Settings, load


def test_environment_then_mapping(monkeypatch):
    monkeypatch.setenv("TRUSTREC_MAX_K", "40")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    monkeypatch.setenv("TRUSTREC_WORKERS", "4")
    settings = load()
    assert (settings.max_k, settings.redis_url, settings.workers) == (40, "redis://elsewhere:6379/0", 4)
    assert load({"TRUSTREC_MAX_K": 7}).max_k == 7
    monkeypatch.setenv("TRUSTREC_MAX_K", "")  # empty is unset
    assert load().max_k == Settings.model_fields["max_k"].default


@pytest.mark.parametrize(("name", "value"), [
    ("TRUSTREC_MAX_K", "ten"), ("TRUSTREC_MAX_K", "0"), ("TRUSTREC_WORKER_CLASS", "gevent"),
    ("TRUSTREC_ENV", "staging"), ("TRUSTREC_API_KEYS", "chef:abc"),
    ("TRUSTREC_CONSENT_REGIME", "maybe"),
])
def test_a_bad_value_names_its_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load(serving=False)


def test_production_checks_only_for_serving(monkeypatch):
    monkeypatch.setenv("TRUSTREC_ENV", "PRODUCTION")
    for name in ("TRUSTREC_API_KEYS", "TRUSTREC_SECRET_KEY", "TRUSTREC_REDIS_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    assert load(serving=False).production  # a tool reading a setting is not a server
    with pytest.raises(ConfigError, match="TRUSTREC_API_KEYS"):
        load()
    monkeypatch.setenv("TRUSTREC_API_KEYS", f"admin:{hash_key('k')}")
    monkeypatch.setenv("TRUSTREC_SECRET_KEY", "s" * 40)
    with pytest.raises(ConfigError, match="TRUSTREC_REDIS_URL"):
        load()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert load().api_keys[0].role == "admin"
