"""Supervised fine-tuning on demonstrations (step 1 of the method)."""
