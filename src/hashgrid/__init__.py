"""hashgrid: one OpenAI-compatible inference network over bitcoin-mining sites."""

__version__ = "0.1.0"
