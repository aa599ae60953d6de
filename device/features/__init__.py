"""Feature extraction shared by the device and the trainer (one code path, no drift)."""
