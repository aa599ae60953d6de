"""Dataset readers: each returns plain arrays plus the labels' names, never a framework object."""

from trainer.datasets.fer2013 import FER2013_CLASSES, FerDataset, load_fer2013

__all__ = ["FER2013_CLASSES", "FerDataset", "load_fer2013"]
