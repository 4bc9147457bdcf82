"""UMCL: unified medical contrastive learning for chest X-rays, from raw data to a served model."""

__version__ = "0.1.0"
