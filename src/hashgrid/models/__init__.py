"""ML model files: making, reading and checking GGUF weights."""
