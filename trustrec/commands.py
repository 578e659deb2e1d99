"""What each `trustrec` subcommand does (argument parsing lives in trustrec.cli)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from recommender.artifacts import save_artifact
from recommender.errors import TrustRecError
from recommender.evaluation import format_table
from recommender.loaders import load_dataset
from recommender.models import MODELS, SERVED, make_model, model_name
from recommender.training import (
    build_artifact,
    compare,
    consent_levels,
    fit_served_model,
    train_and_evaluate,
)
from recommender.tuning import tune as tune_models
from trustrec.arguments import parse_pairs, parse_params, parse_value, write_json
from trustrec.records import as_records_allow

TABLE_COLUMNS = ["ndcg@{k}", "ndcg@{k} sd", "recall@{k}", "precision@{k}", "map@{k}",
                 "coverage@{k}", "train seconds", "refit seconds"]


def _load(args: argparse.Namespace):
    return load_dataset(args.data, args.format)


def _budget(params: dict, name: str, budget: float | None) -> dict:
    """params with time_budget set, for a model that searches; refused for one that does not."""
    if budget is None:
        return params
    if budget <= 0:
        raise TrustRecError("--time-budget must be positive")
    if "time_budget" not in make_model(name).get_params():
        raise TrustRecError(f"--time-budget: model {name!r} has no search to bound")
    return params | {"time_budget": budget}


def _settings():
    """The service's settings (serving.config) as a tool reads them: values, without the checks
    only serving needs."""
    from serving.config import load as load_settings

    return load_settings(serving=False)


def train(args: argparse.Namespace) -> int:
    params = _budget(parse_params(args.param), args.model, args.time_budget)
    make_model(args.model, **params)  # refuse an unknown name or parameter before any work
    settings = _settings()
    dataset, consent_counts = as_records_allow(
        _load(args), args.consent_db or settings.database_url,
        args.regime or settings.consent_regime, recorded_interactions=args.recorded_interactions,
        secret=settings.secret_key)
    print(f"consent kept out of training: {consent_counts}")
    run = train_and_evaluate(dataset, args.model, params, seed=args.seed,
                             levels=consent_levels(args.model), report=print)
    if run.selection is not None:
        print(f"chosen on validation: {run.params}")
    print(format_table({f"{run.name} (test)": run.test_metrics}))
    print(f"{run.name}: fitting the served model on all the data")
    served = fit_served_model(dataset, run)
    print("writing the artifact")
    path = save_artifact(build_artifact(dataset, run, served, consent_counts), args.out)
    print(f"artifact written: {path}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    dataset = _load(args)
    names = list(MODELS) if args.model == "all" else [n.strip() for n in args.model.split(",")]
    names = list(dict.fromkeys(model_name(n) for n in names))
    if args.seeds < 1:
        raise TrustRecError("--seeds must be at least 1")
    params = {n: _budget({}, n, args.time_budget) for n in names if n == SERVED}
    rows = compare(dataset, names, seeds=range(args.seeds), k=args.k, tune=args.tune,
                   params=params)
    columns = [c.format(k=args.k) for c in TABLE_COLUMNS]
    tuned = "baselines tuned on validation" if args.tune else "baselines at their defaults"
    print(f"{dataset.name}: {dataset.summary()}, k={args.k}, mean over {args.seeds} seed(s), "
          f"{tuned}; {SERVED} is the served model")
    print(format_table(rows, columns))
    if args.json_path:
        write_json(args.json_path, {"dataset": dataset.name, "seeds": args.seeds,
                                    "tuned": args.tune, "served": SERVED, "models": rows})
    return 0


def tune(args: argparse.Namespace) -> int:
    from recommender.tuning import grid

    dataset = _load(args)
    axes = {}
    for pair in args.grid:
        name, sep, values = pair.partition("=")
        if not sep:
            raise TrustRecError(f"--grid takes NAME=V1,V2,..., not {pair!r}")
        parsed = parse_value(values + ",")
        axes[name] = list(parsed)
    candidates = grid(**axes) if axes else [{}]
    make_model(args.model, **candidates[0])
    table = tune_models(dataset, args.model, candidates, seed=args.seed)
    print(table.to_string(index=False))
    return 0


def publish(args: argparse.Namespace) -> int:
    from recommender.artifacts import load_artifact
    from serving.publish import connect
    from serving.publish import publish as publish_artifact
    from serving.records.database import create_schema, make_engine
    from serving.records.erasure import erased_among

    settings = _settings()
    client = connect(args.redis)
    prefix = args.prefix or settings.redis_prefix
    if args.grace_seconds < 0:
        raise TrustRecError("--grace-seconds must be at least 0")
    artifact = load_artifact(args.artifact)
    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        # customers erased since the artifact was trained (a republish, a rollback) stay erased
        erased = erased_among(engine, artifact.customer_rows, settings.secret_key)
        if erased:
            print(f"leaving out {len(erased)} customers erased since this artifact was trained")
        # the records database also keeps the experiments: a rebuilt store restores them
        version = publish_artifact(artifact, client, prefix, grace_seconds=args.grace_seconds,
                                   exclude=erased, challenger=args.challenger, records=engine)
    finally:
        engine.dispose()
    if args.challenger is not None:
        print(f"published {version}: the challenger for {args.challenger:.1%} of customers under "
              f"{prefix!r}; `trustrec experiment show` compares the arms")
    else:
        print(f"published {version}: it is now current under {prefix!r}")
    return 0


def batch(args: argparse.Namespace) -> int:
    from trustrec.batch import batch_export

    result = batch_export(args.customers, args.out, k=args.k, chunk=args.chunk,
                          overwrite=args.overwrite)
    print(f"batch {result['batch_id']}: {result['rows']} offers for {result['customers']} "
          f"customers in {result['out']} (recorded in the audit trail as batch responses)")
    return 0


def experiment(args: argparse.Namespace) -> int:
    from serving.publish import connect, end_challenger, promote
    from serving.redis_store import RedisModelStore

    settings = _settings()
    store = RedisModelStore(connect(args.redis), args.prefix or settings.redis_prefix)
    if args.experiment_command in ("promote", "end"):
        from serving.records.database import create_schema, make_engine

        engine = make_engine(args.database_url or settings.database_url)
        try:
            create_schema(engine)
            if args.experiment_command == "promote":
                promoted = promote(store.client, store.keys.prefix, records=engine)
                print(f"promoted {promoted}: the champion for everyone")
            else:
                ended = end_challenger(store.client, store.keys.prefix, records=engine)
                print(f"ended: challenger {ended} removed, the champion serves everyone")
        finally:
            engine.dispose()
        return 0
    from trustrec.experiments import experiment_table

    challenger = store.challenger()
    if challenger is None:
        print("no experiment runs: publish a version with --challenger SHARE to start one")
        return 0
    print(f"champion {store.current_version()} against challenger {challenger.version} "
          f"({challenger.share:.1%} of customers) since {challenger.since}")
    table = experiment_table(args.database_url or settings.database_url, store.client,
                             store.keys.prefix)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def catalog(args: argparse.Namespace) -> int:
    from serving.catalog import make_live, offer_summary, with_catalog
    from serving.publish import connect
    from serving.records import catalog as records
    from serving.records.database import create_schema, make_engine
    from serving.redis_store import NoModelPublished, RedisModelStore

    settings = _settings()
    store = RedisModelStore(connect(args.redis), args.prefix or settings.redis_prefix)
    engine = make_engine(args.database_url or settings.database_url)
    try:
        create_schema(engine)
        version = store.current_version()
        if version is None:
            raise NoModelPublished(store.keys.prefix)
        loaded = with_catalog(store.load_model(version), records.catalog_state(engine))
        now = datetime.now(UTC)
        if args.catalog_command == "show":
            state = records.catalog_state(engine)
            print(f"catalog serial {state.serial} over model version {version}")
            print("unavailable: " + (", ".join(sorted(state.unavailable)) or "none"))
            for offer_id in sorted(state.added):
                summary = offer_summary(state, offer_id, loaded)
                print(f"added {offer_id}: {summary['attributes']}, scored like "
                      f"{summary.get('scored_like', 'its own trained vector')}")
            for change in records.catalog_changes(engine, 20):
                print(f"  #{change['serial']} {change['changed_at']} {change['actor']}: "
                      f"{change['change']} {change['offer_id']}")
            return 0
        if args.catalog_command == "add":
            attributes = parse_pairs(args.attr, "--attr")
            unknown = sorted(set(attributes) - set(loaded.offers.columns))
            if unknown:
                raise TrustRecError(f"--attr: offers have no attribute {unknown[0]!r} (they "
                                    f"have: {', '.join(loaded.offers.columns)})")
            try:
                state = records.add_offer(engine, args.offer_id, attributes, "cli", now,
                                          trained=loaded.offer_columns)
            except records.OfferExists:
                raise TrustRecError(f"offer {args.offer_id!r} is in the catalog already") from None
            changed = [args.offer_id]
        else:
            unknown = [o for o in args.offer_ids if o not in loaded.offer_columns]
            if unknown:
                raise TrustRecError(f"no offer {unknown[0]!r} in the catalog")
            state, changed = records.set_available(
                engine, args.offer_ids, args.catalog_command == "available", "cli", now)
        make_live(store.client, store.keys, state)
    finally:
        engine.dispose()
    print(f"catalog serial {state.serial}: {args.catalog_command} "
          f"{', '.join(changed) or 'nothing (already so)'}; live from the next request")
    return 0


GUNICORN = "gunicorn -c python:serving.gunicorn_conf 'serving.app:create_app()'"


def serve(args: argparse.Namespace) -> int:

    from serving.app import create_app
    from serving.auth import hash_key, new_key

    settings = _settings()
    if settings.production:
        raise TrustRecError(f"`trustrec serve` is the development server; in production run: "
                            f"{GUNICORN} (workers and bind: TRUSTREC_WORKERS, TRUSTREC_BIND)")
    config = {}
    if not settings.api_keys:
        # a development server nobody can call is of no use; keys made up here die with it
        storefront, admin = new_key(), new_key()
        config["TRUSTREC_API_KEYS"] = f"storefront:{hash_key(storefront)},admin:{hash_key(admin)}"
        print(f"no TRUSTREC_API_KEYS: development keys for this run\n"
              f"  storefront: {storefront}\n  admin:      {admin}")
    app = create_app(config)  # a ConfigError is a TrustRecError: one line, exit 2
    print(f"development server on http://{args.host}:{args.port} (production: {GUNICORN})")
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)
    return 0


def keys(args: argparse.Namespace) -> int:
    from serving.auth import hash_key, new_key

    key = new_key()
    print(f"API key (give it to the {args.role}; it is not stored anywhere): {key}")
    print(f"TRUSTREC_API_KEYS entry: {args.role}:{hash_key(key)}")
    return 0


def demo(args: argparse.Namespace) -> int:
    from serving.demo import run

    return run(out=args.out, host=args.host, port=args.port, serve=args.serve)


def audit(args: argparse.Namespace) -> int:
    from recommender.fairness.command import audit_command

    return audit_command(args, _load(args))


def rules(args: argparse.Namespace) -> int:
    """`rules check FILE`: validate; `rules publish FILE --to PATH`: validate, then write
    atomically (a temporary file renamed over PATH), so serving never reads half a file."""
    from recommender.artifacts import load_artifact
    from recommender.rules import load_rules, publish_rules

    catalog = load_artifact(args.artifact) if args.artifact else None
    parsed = load_rules(args.file, catalog)
    checked = f"against {catalog.version}" if catalog is not None else \
        "fields only (give --artifact to check offers and categories)"
    print(f"{parsed.summary()}: valid, checked {checked}")
    if args.rules_command == "publish":
        if Path(args.to).is_dir():
            raise TrustRecError(f"--to {args.to} is a folder: give the rule file's path")
        try:
            target = publish_rules(parsed, args.to)
        except OSError as exc:
            raise TrustRecError(f"cannot write {args.to}: {exc.strerror or exc}") from None
        print(f"published rules {parsed.version!r} to {target}")
    return 0


def purge(args: argparse.Namespace) -> int:
    """Delete audit records (served responses, feedback, closed cases) older than --days."""
    from serving.records.audit import purge as purge_records
    from serving.records.database import create_schema, make_engine

    settings = _settings()
    days = args.days if args.days is not None else settings.audit_retention_days
    if days < 1:
        raise TrustRecError("--days must be at least 1")
    engine = make_engine(args.database_url or settings.database_url)
    create_schema(engine)
    removed = purge_records(engine, days)
    print(f"purged records older than {days} days: "
          + ", ".join(f"{table} {count}" for table, count in removed.items()))
    return 0


def db(args: argparse.Namespace) -> int:
    """`db upgrade`: bring the records database to the newest schema (Alembic migrations)."""
    from alembic.util import CommandError

    from serving.records.database import make_engine, upgrade

    engine = make_engine(args.database_url or _settings().database_url)
    try:
        revision = upgrade(engine, args.revision)
    except CommandError as exc:
        raise TrustRecError(f"cannot upgrade to {args.revision!r}: {exc}") from None
    finally:
        engine.dispose()
    print(f"database at revision {revision}")
    return 0
