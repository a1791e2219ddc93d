"""Powering GPU nodes off and on through their BMC, with DMTF Redfish.

An idle GPU node still draws power that a mining site would rather spend on hashing; the node's
baseboard management controller (BMC) can turn it off, and on again when work needs it, while
the node's own OS is down. Redfish is the DMTF's standard API for BMCs, HTTP and JSON, spoken by
the BMCs of current servers whatever their vendor, so one small client serves them all.

A node is one ComputerSystem resource (`/redfish/v1/Systems/<id>`; the site's configuration
gives its URL). A GET reads its `PowerState`; its `#ComputerSystem.Reset` action changes it: a
POST of `{"ResetType": ...}` to the action's `target`, as the resource names it. Powering on asks
"On" ("ForceOn" where a BMC offers only that). Powering off asks "GracefulShutdown" where the BMC
allows it, so the OS shuts down and the inference engines on the node stop cleanly instead of
losing power mid-request; "ForceOff", which cuts power at once, only where nothing gentler is
allowed. The allowed values are the action's `ResetType@Redfish.AllowableValues`.

As for miners, a power target is level-triggered: `set_power` reads the state first and posts
nothing when the node is already there or on its way, so the same target can be sent again at no
cost. A BMC answers a reset before the node has changed (a graceful shutdown takes as long as the
OS does, and an OS may ignore it): a caller that still finds the node on later sends it again.

Every request carries HTTP basic auth, which the Redfish specification asks every service to
accept; a session token would save nothing for two requests per change. TLS certificates are not
verified by default: BMCs ship self-signed ones.
"""

from typing import Any
from urllib.parse import urljoin

import httpx

_RESET = "#ComputerSystem.Reset"
_ALLOWED = "ResetType@Redfish.AllowableValues"

# ResetType values by preference, and the PowerStates that already are (or are becoming) the
# target, for powering on (True) and off (False).
_RESET_TYPES = {True: ("On", "ForceOn"), False: ("GracefulShutdown", "ForceOff")}
_ALREADY = {True: ("On", "PoweringOn"), False: ("Off", "PoweringOff")}


class BmcError(Exception):
    """A BMC refused, failed or could not be reached; str() says which and why."""


class Redfish:
    """A Redfish client for any number of BMCs, with one connection pool; `aclose` it."""

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        verify_tls: bool = False,
    ) -> None:
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(
            auth=httpx.BasicAuth(username, password or "") if username is not None else None,
            timeout=timeout_s,
            verify=verify_tls,
            headers={"Accept": "application/json"},
        )

    async def power_state(self, system_url: str) -> str:
        """The `PowerState` of a system: "On", "Off", "PoweringOn", "PoweringOff" or "Paused"."""
        return _power_state(system_url, await self._get(system_url))

    async def set_power(self, system_url: str, on: bool) -> bool:
        """Power a system on or off, unless it already is; whether a reset was posted."""
        system = await self._get(system_url)
        if _power_state(system_url, system) in _ALREADY[on]:
            return False
        action = _reset_action(system)
        allowed = action.get(_ALLOWED)
        usable = [t for t in _RESET_TYPES[on] if allowed is None or t in allowed]
        if not usable:
            raise BmcError(
                f"{system_url}: the BMC allows no ResetType to power {'on' if on else 'off'} "
                f"({' or '.join(_RESET_TYPES[on])}); it allows {allowed}"
            )
        target = urljoin(system_url, action.get("target") or _default_target(system_url))
        await self._request("POST", target, json={"ResetType": usable[0]})
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, url: str) -> dict[str, Any]:
        response = await self._request("GET", url)
        try:
            body = response.json()
        except ValueError as e:
            raise BmcError(f"GET {url}: the answer is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise BmcError(f"GET {url}: the answer is not a JSON object")
        return body

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException as e:
            raise BmcError(f"{method} {url}: no answer within {self._timeout_s} s") from e
        except httpx.HTTPError as e:
            raise BmcError(f"{method} {url}: unreachable: {type(e).__name__}: {e}") from e
        if not response.is_success:
            why = _redfish_message(response)
            raise BmcError(
                f"{method} {url}: HTTP {response.status_code} {response.reason_phrase}"
                + (f": {why}" if why else "")
            )
        return response


def _power_state(url: str, system: dict[str, Any]) -> str:
    state = system.get("PowerState")
    if not isinstance(state, str):
        raise BmcError(f"GET {url}: no PowerState; is it a ComputerSystem resource?")
    return state


def _reset_action(system: dict[str, Any]) -> dict[str, Any]:
    """The system's reset action object; empty where it names none (its defaults then apply)."""
    actions = system.get("Actions")
    action = actions.get(_RESET) if isinstance(actions, dict) else None
    return action if isinstance(action, dict) else {}


def _default_target(system_url: str) -> str:
    """Where the Redfish specification puts the reset action of a system that names none."""
    return system_url.rstrip("/") + "/Actions/ComputerSystem.Reset"


def _redfish_message(response: httpx.Response) -> str | None:
    """The message of a Redfish error body: its first extended info's, else its own."""
    try:
        error = response.json().get("error")
        info = error.get("@Message.ExtendedInfo") or [{}]
        message = info[0].get("Message") or error.get("message")
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return None  # not a Redfish error body: a BMC's web server may answer in HTML
    return message if isinstance(message, str) else None
