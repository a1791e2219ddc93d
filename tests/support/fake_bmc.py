"""A fake BMC: the subset of DMTF Redfish (HTTP and JSON) that powers a server off and on.

A site agent reaches a GPU node's baseboard management controller the way it reaches any real
one: it GETs the node's ComputerSystem resource for its `PowerState`, and POSTs `{"ResetType":
...}` to the resource's `#ComputerSystem.Reset` action target. This fake serves exactly that,
with the shapes the Redfish specification (DSP0266) and its ComputerSystem schema give: the
service root and the Systems collection (as a client walking from `/redfish/v1` finds them), one
system `/redfish/v1/Systems/1` whose action lists its `ResetType@Redfish.AllowableValues`, 204
for a reset done, and errors as Redfish error bodies (`error.code` from the Base message
registry, `error.message`, `@Message.ExtendedInfo`). The service root answers without
credentials, as the specification requires; everything else asks for HTTP basic auth when the
fake has a username.

It is an HTTP server on a random free port of 127.0.0.1, in a thread of its own, so a test
drives it with a real client from its own event loop: `with FakeBmc(...) as bmc:`, then
`bmc.system_url`. The state is what a test asserts on: `powered`, and `resets`, every ResetType
received in order (refused ones too). "On" and "ForceOn" power the system on, "GracefulShutdown"
and "ForceOff" off, at once; other allowed types (restarts) leave the power as it is. After each
real change the fake calls `on_power(powered)`, before it answers, so a test can simulate the
node booting or shutting down.
"""

import base64
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

SYSTEM = "/redfish/v1/Systems/1"
RESET = f"{SYSTEM}/Actions/ComputerSystem.Reset"
DEFAULT_ALLOWED = ("On", "ForceOff", "GracefulShutdown", "ForceRestart")

_POWER_ON = {"On", "ForceOn"}
_POWER_OFF = {"GracefulShutdown", "ForceOff"}

Json = dict[str, Any]


class FakeBmc:
    """One BMC managing one system. Use `with FakeBmc(...) as bmc:`."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        powered: bool = True,
        allowed: tuple[str, ...] = DEFAULT_ALLOWED,
        on_power: Callable[[bool], None] | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.powered = powered
        self.allowed = allowed
        self.on_power = on_power
        self.resets: list[str] = []  # every ResetType received, in arrival order
        self._lock = threading.Lock()
        self._server = _Server(self)
        # serve_forever polls for shutdown; its default half second would slow every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def system_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{SYSTEM}"

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # -- the resources ---------------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, Json]:
        """The status and body of a GET of `path`."""
        if path in ("/redfish/v1", "/redfish/v1/"):
            return 200, {
                "@odata.id": "/redfish/v1",
                "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
                "Id": "RootService",
                "Name": "Root Service",
                "RedfishVersion": "1.17.0",
                "Systems": {"@odata.id": "/redfish/v1/Systems"},
            }
        if path == "/redfish/v1/Systems":
            return 200, {
                "@odata.id": "/redfish/v1/Systems",
                "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                "Name": "Computer System Collection",
                "Members": [{"@odata.id": SYSTEM}],
                "Members@odata.count": 1,
            }
        if path == SYSTEM:
            with self._lock:
                state = "On" if self.powered else "Off"
            return 200, {
                "@odata.id": SYSTEM,
                "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
                "Id": "1",
                "Name": "GPU node",
                "SystemType": "Physical",
                "PowerState": state,
                "Actions": {
                    "#ComputerSystem.Reset": {
                        "target": RESET,
                        "ResetType@Redfish.AllowableValues": list(self.allowed),
                    }
                },
            }
        return 404, _missing(path)

    def post(self, path: str, body: object) -> tuple[int, Json | None]:
        """The status and body (None for none) of a POST of `body` to `path`."""
        if path != RESET:
            return 404, _missing(path)
        reset_type = body.get("ResetType") if isinstance(body, dict) else None
        if not isinstance(reset_type, str):
            return 400, _error(
                "ActionParameterMissing",
                "The action ComputerSystem.Reset requires the parameter ResetType to be present "
                "in the request body.",
            )
        with self._lock:
            self.resets.append(reset_type)
            if reset_type not in self.allowed:
                return 400, _error(
                    "ActionParameterValueNotInList",
                    f"The value '{reset_type}' for the parameter ResetType in the action "
                    "ComputerSystem.Reset is not in the list of acceptable values.",
                )
            was = self.powered
            if reset_type in _POWER_ON:
                self.powered = True
            elif reset_type in _POWER_OFF:
                self.powered = False
            changed = self.powered != was
            now = self.powered
        if changed and self.on_power is not None:
            self.on_power(now)
        return 204, None

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header passes: any does when the fake has no username."""
        if self.username is None:
            return True
        expected = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return header == f"Basic {expected}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bmc: FakeBmc) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bmc = bmc


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as BMCs and httpx's pool use it

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        # The service root answers anyone: a client finds the service before it logs in.
        if path.rstrip("/") != "/redfish/v1" and not self._authorized():
            return
        self._answer(*self.server.bmc.get(path))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self._authorized():
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            message = "The request body submitted was malformed JSON and could not be parsed."
            self._answer(400, _error("MalformedJSON", message))
            return
        self._answer(*self.server.bmc.post(self.path.split("?", 1)[0], body))

    def _authorized(self) -> bool:
        if self.server.bmc.authorized(self.headers.get("Authorization")):
            return True
        message = "There is no valid session established with the implementation."
        self._answer(
            401, _error("NoValidSession", message), {"WWW-Authenticate": 'Basic realm="Redfish"'}
        )
        return False

    def _answer(
        self, status: int, body: Json | None, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("OData-Version", "4.0")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read the state, not an access log


def _error(message_id: str, message: str) -> Json:
    """A Redfish error body with one message from the Base registry."""
    return {
        "error": {
            "code": f"Base.1.8.{message_id}",
            "message": message,
            "@Message.ExtendedInfo": [
                {
                    "MessageId": f"Base.1.8.{message_id}",
                    "Message": message,
                    "MessageSeverity": "Critical",
                }
            ],
        }
    }


def _missing(path: str) -> Json:
    return _error("ResourceMissingAtURI", f"The resource at the URI {path} was not found.")
