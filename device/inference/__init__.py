"""Classifiers, smoothing and (later) fusion of modalities."""
