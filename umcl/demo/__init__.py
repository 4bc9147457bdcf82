"""`umcl demo`: synthetic chest X-ray studies in the shapes real sites hold (`generator.py`), made of
patients, studies and reports with planted PHI (`studies.py`, `reports.py`), synthetic radiographs
that show each finding (`radiograph.py`) and a PACS export with its RIS export (`pacs.py`). Every
source it writes is read by a reader any site uses (`umcl/ingest/`): nothing in ingestion knows
the demo."""
