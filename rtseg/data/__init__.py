"""Dataset readers for training and evaluating rtseg models (not used by the real-time pipeline)."""
