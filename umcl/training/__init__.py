"""The pieces of the `train` stage, one job each; `umcl/train.py` puts them together."""
