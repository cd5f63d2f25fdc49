"""IKMo: image-keyframed motion generation. The application shell (CLI, config, server)."""

__version__ = "0.1.0"
