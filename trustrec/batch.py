"""Campaign export: offers and their criteria for many customers at once, as a Parquet file.

    trustrec batch --customers customers.txt --out campaign.parquet [--k 10]
    tr.batch_export("customers.txt", "campaign.parquet")          # in a notebook

Each customer goes through the very code an offers request runs (serving.recommend.Recommender,
with the live catalog, business rules and champion/challenger arms), under the consent on record
at the moment that customer is exported: a customer who withdraws consent while the batch runs is
exported under the new choice if their turn comes after it. Every customer's offers are recorded
in the audit trail as a `batch` response (actor `batch:<batch id>`), so data-usage and the public
statistics see them like any other.

Resumable: customers are exported in chunks, each written to OUT.parts/ with a manifest naming
the batch; run the same command again after a stop and it goes on from the first chunk not
written (the batch id and what was exported stay those of the first run). The parts are joined
into OUT only when all are written, through a temporary file, so OUT is never half-written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from recommender.errors import DataError, TrustRecError
from serving.recommend import OffersQuery
from serving.records.consent import check_name

DEFAULT_CHUNK = 1000
COLUMNS = ("batch_id", "customer_id", "rank", "offer_id", "title", "score", "criteria",
           "personalization", "categories_used", "model_version", "arm", "request_id",
           "exported_at")
SCHEMA = pa.schema([
    ("batch_id", pa.string()), ("customer_id", pa.string()), ("rank", pa.int32()),
    ("offer_id", pa.string()), ("title", pa.string()), ("score", pa.float64()),
    ("criteria", pa.string()), ("personalization", pa.string()),
    ("categories_used", pa.string()), ("model_version", pa.string()), ("arm", pa.string()),
    ("request_id", pa.string()), ("exported_at", pa.timestamp("us", tz="UTC")),
])


def read_customers(path: str | Path) -> list[str]:
    """Customer ids from a text file (one per line), a CSV or a Parquet file with a customer_id
    column; in order, each once. A bad id is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        raise TrustRecError(f"--customers: no file {str(path)!r}")
    if path.suffix in (".csv", ".parquet"):
        table = pd.read_csv(path, dtype=str) if path.suffix == ".csv" else pd.read_parquet(path)
        if "customer_id" not in table:
            raise TrustRecError(f"--customers: {path.name} has no customer_id column")
        raw = [str(v) for v in table["customer_id"].dropna()]
    else:
        raw = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    for line, customer_id in enumerate(raw, 1):
        try:
            check_name(customer_id, "customer_id")
        except DataError as exc:
            raise TrustRecError(f"--customers: line {line}: {exc.message}") from None
    customers = list(dict.fromkeys(raw))
    if not customers:
        raise TrustRecError(f"--customers: {path.name} names no customer")
    return customers


def batch_export(
    customers: str | Path | Sequence[str], out: str | Path, *, k: int = 10,
    services: object | None = None, chunk: int = DEFAULT_CHUNK, progress: bool = True,
    overwrite: bool = False, on_chunk: Callable[[int, int], None] | None = None,
) -> dict:
    """Export offers for `customers` (ids, or a file of them) into the Parquet file `out`.

    services: a serving app's services (app.extensions["trustrec"]); None builds the app from the
    environment, as `trustrec serve` does. on_chunk(done, total) runs after each chunk is written.
    Returns {batch_id, customers, rows, out}."""
    ids = read_customers(customers) if isinstance(customers, (str, Path)) else list(customers)
    out = Path(out)
    if k < 1 or chunk < 1:
        raise TrustRecError("--k and --chunk must be at least 1")
    if out.exists() and not overwrite:
        raise TrustRecError(f"--out: {out} exists (pass --overwrite to replace it)")
    parts = out.with_name(out.name + ".parts")
    manifest = _manifest(parts, ids, k, chunk)
    app = None
    if services is None:
        from serving.app import create_app

        app = create_app()
        services = app.extensions["trustrec"]
    if k > services.settings.max_k:
        raise TrustRecError(f"--k must be at most {services.settings.max_k} (TRUSTREC_MAX_K)")
    chunks = range(0, len(ids), chunk)
    try:
        with tqdm(total=len(ids), desc=f"batch {manifest['batch_id']}", unit="customer",
                  disable=not progress) as bar:
            for number, start in enumerate(chunks):
                part = parts / f"part-{number:06d}.parquet"
                if not part.exists():
                    rows = [row for customer_id in ids[start:start + chunk]
                            for row in _export_one(services, customer_id, k, manifest["batch_id"])]
                    _write_atomic(part, rows)
                bar.update(len(ids[start:start + chunk]))
                if on_chunk is not None:
                    on_chunk(min(start + chunk, len(ids)), len(ids))
        services.audit.flush()
    finally:
        if app is not None:
            from serving.app import close_app

            close_app(app)
    table = pa.concat_tables([pq.read_table(parts / f"part-{n:06d}.parquet", schema=SCHEMA)
                              for n in range(len(chunks))])
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)
    shutil.rmtree(parts)
    return {"batch_id": manifest["batch_id"], "customers": len(ids), "rows": table.num_rows,
            "out": str(out)}


def _manifest(parts: Path, ids: list[str], k: int, chunk: int) -> dict:
    """The batch's manifest: the one a stopped run left (same customers, k and chunks: resume),
    or a new one."""
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    wanted = {"customers_sha256": digest, "k": k, "chunk": chunk}
    path = parts / "manifest.json"
    if path.exists():
        manifest = json.loads(path.read_text())
        if {name: manifest.get(name) for name in wanted} != wanted:
            raise TrustRecError(f"{parts} holds a stopped batch of other customers or options: "
                                "remove it, or rerun that batch's command")
        return manifest
    parts.mkdir(parents=True, exist_ok=True)
    manifest = wanted | {"batch_id": uuid.uuid4().hex[:12],
                         "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest))
    tmp.replace(path)
    return manifest


def _export_one(services, customer_id: str, k: int, batch_id: str) -> list[dict]:
    request_id = services.request_ids.mint(customer_id)
    result = services.recommender.offers(customer_id, OffersQuery(k=k))
    record = result.record(request_id, "batch", f"batch:{batch_id}", {"k": k, "batch_id": batch_id})
    services.on_served(record)  # recorded before it is written out, as before a response leaves
    body, now = result.body, datetime.fromtimestamp(record.served_at, UTC)
    return [{
        "batch_id": batch_id, "customer_id": customer_id, "rank": rank, "offer_id": offer["offer_id"],
        "title": offer["title"], "score": offer["score"], "criteria": json.dumps(offer["criteria"]),
        "personalization": body["personalization"],
        "categories_used": json.dumps(body["categories_used"]),
        "model_version": body["model_version"], "arm": body["arm"], "request_id": request_id,
        "exported_at": now,
    } for rank, offer in enumerate(body["offers"], 1)]


def _write_atomic(path: Path, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
