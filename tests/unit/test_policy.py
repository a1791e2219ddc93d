"""The policy table and the app's routes match one to one: no route without a rule, no rule
without a route."""

from pathlib import Path

import pytest
from fastapi import FastAPI

from hashgrid.server.app import create_app
from hashgrid.server.policy import RULES, api_routes, check_every_route_has_a_rule, rule_key
from hashgrid.server.settings import ServerSettings


def _app(tmp_path: Path) -> FastAPI:
    return create_app(ServerSettings(home=tmp_path))


def test_every_rule_names_a_route_of_the_app(tmp_path: Path) -> None:
    routes = {
        rule_key(method, route.path)
        for route in api_routes(_app(tmp_path))
        for method in route.methods
    }
    assert set(RULES) - routes == set()


def test_a_route_without_a_rule_stops_the_server_at_start(tmp_path: Path) -> None:
    app = _app(tmp_path)

    @app.get("/api/v1/forgotten")
    async def forgotten() -> None: ...

    with pytest.raises(RuntimeError, match="/api/v1/forgotten"):
        check_every_route_has_a_rule(app)


def test_a_catch_all_path_is_keyed_by_its_name() -> None:
    assert rule_key("GET", "/api/v1/models/{name:path}") == ("GET", "/api/v1/models/{name}")
