"""wsjax: weight sharing and network compression as parameter-space transformations."""

__version__ = "0.1.0"
