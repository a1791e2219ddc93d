"""The `x-request-id` every gateway answer carries: the client's own when it sent one (cut to
`MAX_CLIENT_ID` characters), else the gateway's `req_...`. A usage record's key is always the
gateway's own id, so a client repeating its id is billed for each request."""

import uuid

MAX_CLIENT_ID = 200


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def client_request_id(header: str | None) -> str | None:
    """The client's `x-request-id`, as the gateway echoes it; None when it sent none."""
    return header[:MAX_CLIENT_ID] if header else None


def reply_id(header: str | None) -> str:
    """The id to answer with, for a request whose `x-request-id` header is `header`."""
    return client_request_id(header) or new_request_id()
