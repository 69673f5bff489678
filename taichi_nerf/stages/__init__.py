"""The pipeline's stages, one module each, in the order a ray meets them: rays (``cameras``),
samples along them (``sampling``, ``occupancy``, ``proposal``; laid out as ``packing`` says,
in the space ``space`` maps), their encoding (``encoding``), the field (``field``) and the
compositing of its output into pixels (``compositing``). ``reference`` holds the float64 torch
versions the kernels are tested against. The stages import nothing above the package's base
modules (backend, profiling), so each can be used and tested alone."""
