"""igpt-lite: a compact Image GPT."""

__version__ = "0.2.0"
