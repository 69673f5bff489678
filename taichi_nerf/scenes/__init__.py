"""Scenes this project makes: the built-in scene, the turntable capture, what real photos add
to a render, and the user-like test sets of the benchmark matrix (docs/ARCHITECTURE.md)."""
