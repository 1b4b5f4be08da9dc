"""glm5cluster: from a YAML inventory of bare-metal GPU servers to a serving, verified GLM-5."""

__version__ = "0.1.0"
