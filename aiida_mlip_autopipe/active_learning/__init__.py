"""The active-learning loop's own parts: its validated settings and the per-structure lineage of its data."""
