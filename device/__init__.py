"""emotion-edge device runtime: camera frames in, emotion labels over MQTT out."""

__version__ = "0.1.0"
