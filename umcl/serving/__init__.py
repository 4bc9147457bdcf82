"""What the HTTP service (`umcl/service.py`) is made of besides its routes: its settings, read once
from the environment (`settings.py`), and the handling of uploads before the model sees them
(`uploads.py`)."""
