"""timm-compat: a matrix of timm models x loading paths x overrides, with a named cause for every failure.

The packages follow the stages of one cell, and each imports only the packages before it in `LAYERS`
(tests/test_layout.py checks this, deferred imports included): a scenario is run against a source model
through a loading path, the judge turns what happened into evidence, the signature catalog names it, the
result is recorded, and the report reads the records.
"""

LAYERS = ("core", "source", "judge", "signatures", "paths", "repro", "run", "report", "tools")
