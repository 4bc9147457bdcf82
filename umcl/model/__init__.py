"""The UMCL model: encoders, continuous prompts and the image–text–label contrastive loss."""
