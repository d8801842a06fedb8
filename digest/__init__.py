"""digest: turn published articles into a daily email digest."""

__version__ = "0.1.0"
