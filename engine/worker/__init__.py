"""The worker runtime: the in-process pool, its auto-scaler, heartbeats and maintenance."""
