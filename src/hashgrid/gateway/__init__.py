"""The data plane: an OpenAI-compatible `/v1` in front of every replica."""
