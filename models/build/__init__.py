"""Build-time code: exporting, training, converting and evaluating the models, and fitting
the selector. A worker never imports it: what serving needs lives in ``models/`` outside
this package (``tests/unit/test_layout.py`` holds that rule)."""
