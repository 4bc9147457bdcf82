"""Ingestion: a site's raw data → validated, de-identified rows → one table of triplets.

Readers per format (`sources.py`, `pacs.py` for a PACS export joined to its RIS export) yield
`records.Record`s; `views.py` decides which projections a source keeps; `reports.py` keeps a
report's findings and impression; `deid/` scrubs report text; `pseudonyms.py` turns native ids
into keyed pseudonyms; `validate.py` (stage `validate`) runs the Great Expectations suites and
quarantines what fails; `labeler.py` labels reports; `unify.py` (stage `unify`) writes the triplet
table; `locator.py` keeps the one map from a pseudonymous image key to its file."""
