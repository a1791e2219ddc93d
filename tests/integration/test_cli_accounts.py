"""Accounts through the CLI, as users run it: sign-up, sign-in, invites, roles, personal tokens
and the audit log, against a live control plane on each database, the CLI a real subprocess
with its own home (where the login is saved)."""

import json
import stat
from pathlib import Path

import pytest

from hashgrid.common.net import free_port

from support.cli import PASSWORD, base_env, failed, ok, ok_json, one_line_error, server_env, sign_up
from support.live import ADMIN_TOKEN, LiveServer, server_settings

sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def user_env(home: Path) -> dict[str, str]:
    """The environment of a user whose hashgrid home is `home`: no server or token set."""
    return base_env(HASHGRID_HOME=str(home))


def saved_login(home: Path) -> dict[str, str]:
    return dict(json.loads((home / "config.json").read_text()))


def test_sign_up_saves_a_private_login_and_whoami_names_the_user(
    server: LiveServer, tmp_path: Path
) -> None:
    """Customer and operator sign-ups each save the token owner-only and print who signed in
    where (never the token); whoami then says who the commands act as."""
    home = tmp_path / "ada"
    env = user_env(home)
    out = ok(
        "signup", "--server", server.url, "--email", "Ada@Example.com", "--organization", "acme",
        "--kind", "customer", "--name", "Ada", "--password-stdin", env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    login = saved_login(home)
    assert login["token"].startswith("hg_pat_")
    assert login["token"] not in out
    assert f"signed in as ada@example.com, admin of customer acme, at {server.url}" in out, out
    assert stat.S_IMODE((home / "config.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700

    assert f"ada@example.com: customer admin of customer acme, at {server.url}" in ok(
        "whoami", env=env
    )
    me = ok_json("whoami", env=env)
    assert (me["organization"], me["kind"], me["role"]) == ("acme", "customer", "customer admin")

    operator = sign_up(server.url, tmp_path / "olu", "olu@minerco.example", "minerco", "operator")
    assert ok_json("whoami", env=operator)["role"] == "operator admin"
    # The admin token is nobody's user.
    assert "the admin token: platform admin" in ok("whoami", env=server_env(server))


def test_invite_only_sign_up_takes_a_code_the_platform_admin_made(
    database_url: str, tmp_path: Path
) -> None:
    settings = server_settings(tmp_path / "server", database_url, signup="invite")
    with LiveServer(settings) as server:
        env = user_env(tmp_path / "olu")
        args = (
            "signup", "--server", server.url, "--email", "olu@minerco.example",
            "--organization", "minerco", "--kind", "operator", "--password-stdin",
        )  # fmt: skip
        refused = one_line_error(*args, env=env, stdin=PASSWORD)
        assert "by invitation" in refused, refused
        code = ok("invites", "signup", "--kind", "operator", env=server_env(server))
        code = code.strip().splitlines()[-1]
        assert code.startswith("hg_invite_")
        customer = [*args[:-3], "--kind", "customer", "--password-stdin", "--invite", code]
        wrong_kind = one_line_error(*customer, env=env, stdin=PASSWORD)
        assert "403" in wrong_kind, wrong_kind
        ok(*args, "--invite", code, env=env, stdin=PASSWORD)
        assert ok_json("whoami", env=env)["role"] == "operator admin"
        assert "403" in one_line_error("invites", "signup", "--kind", "customer", env=env)


def test_login_reads_the_password_on_stdin_and_a_wrong_one_is_one_line(
    server: LiveServer, tmp_path: Path
) -> None:
    sign_up(server.url, tmp_path / "signup-home", "ada@example.com", "acme", "customer")
    home = tmp_path / "laptop"
    env = user_env(home)
    args = ("login", "--server", server.url, "--email", "ada@example.com", "--password-stdin")

    wrong = one_line_error(*args, env=env, stdin="not the password\n")
    assert "401" in wrong, wrong
    assert not (home / "config.json").exists()

    signed_in = ok_json(*args, env=env, stdin=PASSWORD + "\n")  # --json: the token, for scripts
    assert signed_in["token"] == saved_login(home)["token"]
    assert ok_json("whoami", env=env)["user"]["email"] == "ada@example.com"

    short = one_line_error(
        "signup", "--server", server.url, "--email", "bo@example.com", "--organization", "bo",
        "--kind", "customer", "--password-stdin", env=env, stdin="short\n",
    )  # fmt: skip
    assert "password" in short, short


def test_logout_revokes_the_saved_token_and_forgets_it(server: LiveServer, tmp_path: Path) -> None:
    home = tmp_path / "ada"
    env = sign_up(server.url, home, "ada@example.com", "acme", "customer")
    token = saved_login(home)["token"]
    assert stat.S_IMODE((home / "config.json").stat().st_mode) == 0o600

    assert "token revoked" in ok("logout", env=env)
    assert not (home / "config.json").exists()
    revoked = one_line_error("whoami", env=server_env(server, token))
    assert "401" in revoked, revoked
    assert "hashgrid login" in one_line_error("whoami", env=env)
    assert "not signed in" in ok("logout", env=env)


def test_an_invited_member_reads_keys_makes_one_once_an_admin_and_is_locked_out_once_removed(
    server: LiveServer, tmp_path: Path
) -> None:
    admin = sign_up(server.url, tmp_path / "ada", "ada@example.com", "acme", "customer")
    code = ok("invites", "create", env=admin).strip().splitlines()[-1]
    assert code.startswith("hg_invite_")

    home = tmp_path / "bo"
    bo = user_env(home)
    ok(
        "invites", "accept", code, "--server", server.url, "--email", "bo@example.com",
        "--password-stdin", env=bo, stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert ok_json("whoami", env=bo)["role"] == "customer member"
    assert ok_json("keys", "list", env=bo) == []
    refused = one_line_error("keys", "create", "--name", "bo", env=bo)
    assert "403" in refused, refused
    assert "403" in one_line_error("invites", "create", env=bo)

    members = {m["email"]: m for m in ok_json("members", "list", env=admin)}
    assert {e: m["role"] for e, m in members.items()} == {
        "ada@example.com": "admin",
        "bo@example.com": "member",
    }
    # By email or by id. A token keeps the role it was made with: Bo signs in again as admin.
    promoted = ok("members", "role", "bo@example.com", "admin", env=admin)
    assert "bo@example.com is now admin of acme" in promoted, promoted
    assert "403" in one_line_error("keys", "create", "--name", "bo", env=bo)
    ok("login", "--email", "bo@example.com", "--password-stdin", env=bo, stdin=PASSWORD)
    assert ok_json("whoami", env=bo)["role"] == "customer admin"
    key = ok_json("keys", "create", "--name", "bo", env=bo)
    assert key["key"].startswith("sk-hg-")
    assert [k["name"] for k in ok_json("keys", "list", env=admin)] == ["bo"]

    bo_id = members["bo@example.com"]["user_id"]
    assert "removed" in ok("members", "remove", bo_id, env=admin)
    locked_out = one_line_error("keys", "list", env=bo)
    assert "401" in locked_out, locked_out
    assert "hashgrid login" in locked_out, locked_out
    assert [m["email"] for m in ok_json("members", "list", "acme", env=admin)] == [
        "ada@example.com"
    ]

    audit = ok_json("audit", "--limit", "50", env=admin)
    actions = " ".join(f"{e['method']} {e['path']}" for e in audit)
    for change in (
        "POST /api/v1/organizations/acme/invites",
        f"PUT /api/v1/organizations/acme/members/{bo_id}",
        f"DELETE /api/v1/organizations/acme/members/{bo_id}",
        "POST /api/v1/keys",
    ):
        assert change in actions, (change, actions)
    assert "remove_member" in ok("audit", env=admin)
    assert "403" in one_line_error("audit", env=new_member(server, tmp_path, admin))


def new_member(server: LiveServer, tmp_path: Path, admin: dict[str, str]) -> dict[str, str]:
    """A fresh member of the admin's organization (the audit log is for admins)."""
    code = ok("invites", "create", "--days", "1", env=admin).strip().splitlines()[-1]
    env = user_env(tmp_path / "cy")
    ok(
        "invites", "accept", code, "--server", server.url, "--email", "cy@example.com",
        "--password-stdin", env=env, stdin=PASSWORD + "\n",
    )  # fmt: skip
    return env


def test_personal_tokens_are_made_listed_and_revoked(server: LiveServer, tmp_path: Path) -> None:
    env = sign_up(server.url, tmp_path / "ada", "ada@example.com", "acme", "customer")
    made = ok_json("tokens", "create", "ci", "--role", "member", "--days", "7", env=env)
    assert made["token"].startswith("hg_pat_")
    assert made["token"] not in ok("tokens", "list", env=env)
    assert ok_json("whoami", env=server_env(server, made["token"]))["role"] == "customer member"

    listed = {t["name"]: t for t in ok_json("tokens", "list", env=env)}
    assert set(listed) == {"signup", "ci"}
    assert listed["ci"]["role"] == "member"

    assert f"revoked {made['id']}" in ok("tokens", "revoke", made["id"], env=env)
    assert "401" in one_line_error("whoami", env=server_env(server, made["token"]))
    (ci,) = [t for t in ok_json("tokens", "list", env=env) if t["name"] == "ci"]
    assert ci["revoked_at"] is not None

    own = saved_login(tmp_path / "ada")["token_id"]
    assert "signed out" in ok("tokens", "revoke", own, env=env)
    assert not (tmp_path / "ada" / "config.json").exists()


def test_customers_and_operators_each_see_only_their_own(
    server: LiveServer, tmp_path: Path
) -> None:
    """A customer may not list sites or nodes; an operator may not list keys; one customer
    never sees another's keys; the platform admin must name the customer of a key."""
    acme = sign_up(server.url, tmp_path / "ada", "ada@example.com", "acme", "customer")
    globex = sign_up(server.url, tmp_path / "gus", "gus@globex.example", "globex", "customer")
    operator = sign_up(server.url, tmp_path / "olu", "olu@minerco.example", "minerco", "operator")

    ok("sites", "create", "tx", "--region", "us-south", "--country", "US", "--power-mw", "1",
       env=operator)  # fmt: skip
    assert [s["name"] for s in ok_json("sites", "list", env=operator)] == ["tx"]
    for command in (("sites", "list"), ("nodes", "list")):
        refused = one_line_error(*command, env=acme)
        assert "403" in refused, refused
    assert "403" in one_line_error("keys", "list", env=operator)
    assert "403" in one_line_error("keys", "create", env=operator)

    key = ok_json("keys", "create", "--name", "prod", env=acme)
    assert [k["id"] for k in ok_json("keys", "list", env=acme)] == [key["id"]]
    assert ok_json("keys", "list", env=globex) == []
    missing = one_line_error("keys", "revoke", key["id"], env=globex)
    assert "404" in missing, missing
    assert "404" in one_line_error("members", "list", "acme", env=globex)

    admin = server_env(server)
    assert "400" in one_line_error("keys", "create", env=admin)
    assert ok_json("keys", "create", "acme", env=admin)["customer_id"] == key["customer_id"]
    assert "name one (--org ORG)" in one_line_error("members", "list", env=admin)


@sqlite
def test_a_login_beats_up_json_and_is_never_sent_to_another_server(
    server: LiveServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    up = {
        "gateway_url": "http://127.0.0.1:1/v1",
        "api_key": "sk-hg-unused",
        "server_url": server.url,
        "admin_token": ADMIN_TOKEN,
    }
    (home / "up.json").write_text(json.dumps(up))
    env = user_env(home)
    assert ok_json("whoami", env=env)["role"] == "platform admin"

    sign_up(server.url, home, "ada@example.com", "acme", "customer")
    assert ok_json("whoami", env=env)["role"] == "customer admin"
    # The same server however written: the saved login still applies.
    assert ok_json("whoami", "--server", server.url + "/", env=env)["role"] == "customer admin"

    elsewhere = f"http://127.0.0.1:{free_port()}"
    refused = one_line_error("whoami", "--server", elsewhere, env=env)
    assert f"no token for {elsewhere}" in refused, refused
    assert (
        "cannot reach"
        in failed("whoami", "--server", elsewhere, "--token", "hg_pat_x", env=env).stderr
    )

    ok("logout", env=env)
    assert ok_json("whoami", env=env)["role"] == "platform admin"
