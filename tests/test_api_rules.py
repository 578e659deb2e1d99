"""Business rules on the real app (real Redis, SQLite audit trail): applied after ranking exactly as
recommender.rules computes them, carried in the response and the audit record, re-read when the
file changes, a bad file refused while the previous rules stay; and the `trustrec rules` command."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import sqlalchemy as sa
import test_api
from test_api import CUSTOMER, ids, key, offers, small_artifact
from test_api_openapi import check
from test_cli import trustrec

from recommender.artifacts import save_artifact
from recommender.ranking import customer_state, rank
from recommender.rules import CompiledRules, parse_rules, publish_rules
from serving.auth import ConfigError
from serving.records.audit import served_table
from trustrec import cli

make_app, app, client = test_api.make_app, test_api.app, test_api.client  # the same fixtures
ALL = np.ones(4, dtype=bool)


def plain(k: int = 60) -> list[str]:
    """CUSTOMER's offers without rules, from the artifact itself."""
    artifact = small_artifact()
    columns, _ = rank(artifact, customer_state(artifact, CUSTOMER), ALL, k)
    return [str(artifact.offers.index[c]) for c in columns]


def campaign(version: str = "v1") -> str:
    """Exclude the customer's best offer, boost their 12th twenty-fold, cap every category at 30%."""
    order = plain()
    return (f'version = "{version}"\n[exclude]\noffers = ["{order[0]}"]\n'
            f'[[boost]]\nname = "campaign"\noffer = "{order[11]}"\nfactor = 20\n[[cap]]\nshare = 0.3\n')


def expected(text: str, k: int = 10):
    """What serving must answer: recommender.rules applied to ranking.rank's candidates."""
    artifact = small_artifact()
    compiled = CompiledRules(parse_rules(text, artifact), artifact.offers, artifact.model.item_vectors)
    columns, scores = rank(artifact, customer_state(artifact, CUSTOMER), ALL,
                           compiled.candidates_needed(k))
    outcome = compiled.apply(columns, scores, k)
    return [str(artifact.offers.index[c]) for c in outcome.columns], scores[outcome.positions], outcome


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "live" / "rules.toml"
    publish_rules(parse_rules(campaign()), path)
    return path


@pytest.fixture
def ruled(make_app, rules_file):
    return make_app(TRUSTREC_RULES=str(rules_file), TRUSTREC_RULES_CHECK_MS=0)


def audit_payload(app, request_id: str) -> dict:
    services = app.extensions["trustrec"]
    services.audit.flush()
    with services.engine.connect() as connection:
        row = connection.execute(
            sa.select(served_table).where(served_table.c.request_id == request_id)).one()
    return dict(row._mapping)


def test_rules_are_applied_after_ranking_and_shown_as_a_promoted_offer(ruled):
    client = ruled.test_client()
    body = check(client.get(f"/v1/customers/{CUSTOMER}/offers?k=10", headers=key()), "Offers", 200)
    served, scores, outcome = expected(campaign())
    assert body["rules_version"] == "v1"
    assert ids(body) == served and [o["score"] for o in body["offers"]] == scores.tolist()
    order = plain()
    assert order[0] not in ids(body) and ids(body)[0] == order[11]
    promoted = body["offers"][0]
    assert promoted["business_rule"] == {"change": "boosted", "text": "Promoted offer"}
    assert promoted["criteria"][0] == {"category": "business_rule", "text": "Promoted offer",
                                       "share": 0.0, "direction": "positive"}
    assert all("business_rule" not in o for o in body["offers"][1:])
    categories = small_artifact().offers.loc[ids(body), "category"]
    assert categories.value_counts().max() <= 3
    why = check(client.get(promoted["why"], headers=key()), "Why", 200)
    assert why["rules_version"] == "v1"
    assert [r["change"] for r in why["business_rules"]] == ["boosted"]
    unaffected = client.get(f"/v1/customers/{CUSTOMER}/offers/{order[1]}/why", headers=key())
    assert unaffected.get_json()["business_rules"] == []
    assert outcome.changes


def test_the_audit_record_says_which_rule_changed_what(ruled):
    client = ruled.test_client()
    body = offers(client, query="?k=10")
    payload = audit_payload(ruled, body["request_id"])
    _, _, outcome = expected(campaign())
    assert payload["rules_version"] == "v1"
    assert payload["rule_changes"] == [c.to_dict() for c in outcome.changes]
    by_offer = {c["offer_id"]: c for c in payload["rule_changes"]}
    order = plain()
    assert by_offer[order[0]] == {"offer_id": order[0], "change": "excluded",
                                  "rules": ["exclude.offers"], "rank_without_rules": 1, "rank": None}
    assert by_offer[order[11]]["change"] == "boosted" and by_offer[order[11]]["rules"] == ["campaign"]
    assert payload["reasons"][order[11]][0]["text"] == "Promoted offer"
    usage = check(client.get(f"/v1/customers/{CUSTOMER}/data-usage", headers=key()), "DataUsage", 200)
    [record] = [r for r in usage["records"] if r["request_id"] == body["request_id"]]
    assert record["rules_version"] == "v1" and record["rule_changes"] == payload["rule_changes"]


def test_a_published_file_takes_effect_without_restart_and_a_bad_one_is_refused(
        ruled, rules_file, caplog):
    client = ruled.test_client()
    assert offers(client, query="?k=10")["rules_version"] == "v1"
    publish_rules(parse_rules(campaign("v2") + "[diversity]\nstrength = 0.5\n"), rules_file)
    body = offers(client, query="?k=10")
    assert body["rules_version"] == "v2"
    assert ids(body) == expected(campaign("v2") + "[diversity]\nstrength = 0.5\n")[0]
    caplog.set_level(logging.ERROR)
    for bad in ('version = "v3"\ncolour = "blue"\n', 'version = "v3"\n[exclude]\noffers = ["nope"]\n',
                'version = "v3"\n[[boost]]\ncategory = "books"\nfactor = 0\n'):
        rules_file.write_text(bad)
        after = offers(client, query="?k=10")
        assert after["rules_version"] == "v2" and ids(after) == ids(body)
        assert "rule file refused, rules v2 stay in force" in caplog.text
        caplog.clear()


def test_without_rules_nothing_changes_and_rules_version_is_null(client):
    body = offers(client, query="?k=10")
    assert body["rules_version"] is None and ids(body) == plain(10)
    assert all("business_rule" not in o for o in body["offers"])


def test_rules_apply_to_the_calibrated_order_too(ruled):
    body = offers(ruled.test_client(), query="?k=10&calibrate=0.5")
    assert plain()[0] not in ids(body) and len(ids(body)) == 10
    assert small_artifact().offers.loc[ids(body), "category"].value_counts().max() <= 3


def test_a_bad_rules_file_refuses_to_start(make_app, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "1"\n[[cap]]\nshare = 2\n')
    with pytest.raises(ConfigError, match=r"TRUSTREC_RULES: file .*bad.toml, field 'cap\[0\].share'"):
        make_app(TRUSTREC_RULES=str(bad))
    with pytest.raises(ConfigError, match="not found"):
        make_app(TRUSTREC_RULES=str(tmp_path / "missing.toml"))


def test_the_rules_command_checks_and_publishes(tmp_path, capsys):
    artifact = str(save_artifact(small_artifact(), tmp_path / "models"))
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(campaign())
    bad.write_text('version = "1"\n[exclude]\noffers = ["no-such-offer"]\n')
    result = trustrec("rules", "check", str(bad), "--artifact", artifact)  # a real process's exit
    assert result.returncode == 2 and result.stdout == ""
    assert "field 'exclude.offers': unknown offer 'no-such-offer'" in result.stderr
    assert cli.main(["rules", "check", str(good), "--artifact", artifact]) == 0
    assert "valid, checked against" in capsys.readouterr().out
    target = tmp_path / "live" / "rules.toml"
    assert cli.main(["rules", "publish", str(bad), "--to", str(target), "--artifact", artifact]) == 2
    assert not target.exists()
    assert cli.main(["rules", "publish", str(good), "--to", str(target), "--artifact", artifact]) == 0
    assert target.read_text() == good.read_text()
    # a folder, or a path through a file, is a message and exit 2, not a traceback
    assert cli.main(["rules", "publish", str(good), "--to", str(tmp_path)]) == 2
    assert cli.main(["rules", "publish", str(good), "--to", str(good / "x.toml")]) == 2
    assert "cannot write" in capsys.readouterr().err
