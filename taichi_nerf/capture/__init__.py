"""Photos and videos to a dataset with COLMAP, with masks, refusing degenerate
reconstructions (docs/ARCHITECTURE.md)."""
