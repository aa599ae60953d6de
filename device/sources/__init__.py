"""Frame sources behind one small interface, chosen by the validated ``rgb.type`` config key."""
