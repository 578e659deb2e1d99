"""TrustRec's entry points, above everything else: the `trustrec` command line and the notebooks'
Python API. Layers point one way, trustrec -> serving -> explain -> recommender
(tests/test_layers.py holds it)."""
