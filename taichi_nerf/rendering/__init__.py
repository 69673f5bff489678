"""Rendering: the ``Renderer`` that runs ray batches and whole images through the stages, the
``Scene`` (kind, bounds, the video that suits the capture) and the background colours."""
