"""The records layer: everything serving keeps in the database, behind functions the views call.

- database: engines, the schema, write transactions, the reachability check;
- consent: consent records and their history (optimistic concurrency);
- interactions: interactions posted to the API, durable training data;
- audit: the audit trail (served responses, feedback, cases, erasure tombstones), its background
  writer, retention;
- feedback: feedback on served offers and the cases staff handle;
- stats: the public statistics, computed from the records;
- erasure: erasing a customer's records, with a receipt.

Views hold no SQL (tests/test_layers.py checks serving/api/); training reads the records through
trustrec.records, without Flask.
"""
