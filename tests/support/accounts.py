"""Accounts made the way their users make them: through the REST API's sign-up."""

from support.live import LiveServer

PASSWORD = "a long enough password"


def sign_up(server: LiveServer, organization: str, kind: str = "customer") -> str:
    """A new organization of `kind` and its first admin: the admin's personal token."""
    body = {
        "email": f"admin@{organization}.example",
        "password": PASSWORD,
        "organization": organization,
        "kind": kind,
    }
    with server.http(token=None) as anonymous:
        r = anonymous.post("/api/v1/signup", json=body)
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token
