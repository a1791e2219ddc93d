"""Helpers the tests share: live servers, agent processes, waiting."""
