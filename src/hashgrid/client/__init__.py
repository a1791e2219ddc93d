"""A typed client for the control plane's REST API."""

from hashgrid.client.api import ApiError, HashgridClient

__all__ = ["ApiError", "HashgridClient"]
