"""Applications built on ALTO (each a function that builds a pipeline)."""
