"""The secrets UMCL asks a site for (the pseudonym key, `umcl/ingest/pseudonyms.py`; the service's
API key, `umcl/auth.py`): how long each must be, and one way to make one."""

MIN_KEY_LENGTH = 16  # characters: shorter keys are guessed or enumerated too easily
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
