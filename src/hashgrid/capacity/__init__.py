"""Capacity classes and the hardware check at join: pure, shared by the agent and the server.

`verdict.judge` takes a node's fingerprint and its benchmark and says what class of capacity the
node offers and what looks wrong; `gpus` knows the memory of common GPU models.
"""
