"""igpt-lite: a compact Image GPT."""
