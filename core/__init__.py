"""Train: one API, one job spec and one lifecycle for training jobs on every cloud."""

__version__ = "0.1.0"
