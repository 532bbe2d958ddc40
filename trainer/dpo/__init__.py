"""Direct preference optimisation from K-way rankings (one policy pass per completion, reference cached)."""
