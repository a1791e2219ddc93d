"""The REST API's request and response shapes, one module per domain: the server validates
requests and answers with them, and the client and CLI build and read the same shapes without
importing the server (an import-linter contract keeps it so)."""
