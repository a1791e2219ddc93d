"""The `hashgrid` command as a user runs it: a real subprocess against a live control plane."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.core import TyperGroup

from hashgrid.cli.main import app
from hashgrid.common.net import free_port

from support.cli import base_env, failed, ok, ok_json, server_env
from support.fake_hub import hub_in_thread
from support.live import ADMIN_TOKEN, LiveServer

# One backend is enough here: the API itself is tested on each in test_server_api.py.
sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@sqlite
def test_sites_create_list_join_token_and_duplicate_error(server: LiveServer) -> None:
    """sites create/list round-trip, a join token in both forms, a readable duplicate error."""
    env = server_env(server)
    assert ok_json("nodes", "list", env=env) == []

    site = ok_json(
        "sites", "create", "tx-west", "--region", "us-south", "--country", "US",
        "--power-mw", "25", env=env,
    )  # fmt: skip
    assert (site["name"], site["region"], site["country"]) == ("tx-west", "us-south", "US")
    assert site["power_mw"] == 25

    sites = ok_json("sites", "list", env=env)
    assert [s["name"] for s in sites] == ["tx-west"]

    duplicate = failed(
        "sites", "create", "tx-west", "--region", "us-south", "--country", "US",
        "--power-mw", "25", env=env,
    )  # fmt: skip
    assert "exist" in duplicate.stderr.lower(), duplicate.stderr

    token = ok_json("sites", "join-token", "tx-west", env=env)
    assert token["site"] == "tx-west"
    assert token["token"].startswith("hg_join_")

    plain = ok("sites", "join-token", "tx-west", env=env)
    lines = [line.strip() for line in plain.splitlines()]
    assert any(line.startswith("hg_join_") and " " not in line for line in lines), plain


@sqlite
def test_orgs_and_keys_create_list_revoke_without_leaking_the_secret(server: LiveServer) -> None:
    """keys create shows the secret once; keys list never does; revoke sets revoked_at."""
    env = server_env(server)
    org = ok_json("orgs", "create", "acme", "--kind", "customer", env=env)
    assert (org["name"], org["kind"]) == ("acme", "customer")

    created = ok_json("keys", "create", "--customer", "acme", env=env)
    secret = created["key"]
    assert secret.startswith("sk-hg-")

    listing = ok("keys", "list", "--json", env=env)
    assert secret not in listing
    keys = json.loads(listing)
    (key,) = [k for k in keys if k["id"] == created["id"]]
    assert key["prefix"] == created["prefix"]
    assert secret.startswith(key["prefix"])
    assert key["revoked_at"] is None
    assert all("key" not in k for k in keys)

    ok("keys", "revoke", created["id"], env=env)
    (revoked,) = [k for k in ok_json("keys", "list", env=env) if k["id"] == created["id"]]
    assert revoked["revoked_at"] is not None


@sqlite
def test_keys_orgs_and_models_take_limits_budgets_and_prices(
    server: LiveServer, tiny_model: Path
) -> None:
    """keys create CUSTOMER --rpm --tpm --budget; keys limits and orgs limits replace them;
    models prices sets prices; a bad limit fails with a message and changes nothing."""
    env = server_env(server)
    ok("orgs", "create", "acme", "--kind", "customer", env=env)
    key = ok_json("keys", "create", "acme", "--rpm", "60", "--tpm", "100000", "--budget", "50",
                  env=env)  # fmt: skip
    assert key["limits"] == {"rpm": 60, "tpm": 100000, "monthly_budget_usd": "50.00"}
    assert "60 rpm, 100000 tpm, $50.00/month" in ok("keys", "list", env=env)

    lifted = ok_json("keys", "limits", key["id"], "--tpm", "500", env=env)
    assert lifted["limits"] == {"rpm": None, "tpm": 500, "monthly_budget_usd": None}
    bad = failed("keys", "limits", key["id"], "--rpm", "0", env=env)
    assert "--rpm" in bad.stderr
    finer = failed("keys", "limits", key["id"], "--budget", "0.0000001", env=env)
    assert "--budget" in finer.stderr
    (listed,) = ok_json("keys", "list", env=env)
    assert listed["limits"]["tpm"] == 500

    org = ok_json("orgs", "limits", "acme", "--rpm", "600", "--budget", "1000.5", env=env)
    assert org["limits"] == {"rpm": 600, "tpm": None, "monthly_budget_usd": "1000.50"}
    assert "600 rpm, $1000.50/month" in ok("orgs", "list", env=env)

    ok("models", "add", "tiny", "--path", str(tiny_model), env=env)
    priced = ok_json("prices", "set", "tiny", "--prompt", "0.5", "--completion", "1.5", env=env)
    assert [(p["tier"], p["prompt"], p["cached"], p["completion"]) for p in priced] == [
        ("firm", "0.50", "0.50", "1.50"),
        ("flex", "0.50", "0.50", "1.50"),
    ]
    assert "$0.50" in ok("prices", env=env)
    bad = failed("prices", "set", "tiny", "--prompt", "0.0000001", "--completion", "1", env=env)
    assert "decimal" in bad.stderr


@sqlite
def test_make_tiny_deploy_show_scale_and_delete(
    server: LiveServer, tiny_model: Path, tmp_path: Path
) -> None:
    """make-tiny writes a small GGUF; deploy by path and by name; show, scale, delete."""
    made = tmp_path / "made" / "tiny.gguf"
    ok("models", "make-tiny", str(made), env=base_env())
    assert made.is_file()
    assert 0 < made.stat().st_size < 1_000_000

    env = server_env(server)
    deployed = ok_json("deploy", str(tiny_model), env=env)
    stem = tiny_model.stem
    assert (deployed["name"], deployed["model"], deployed["replicas"]) == (stem, stem, 1)
    models = ok_json("models", "list", env=env)
    assert [m["name"] for m in models] == [stem]
    assert models[0]["source"] == str(tiny_model.resolve())
    assert stem in [d["name"] for d in ok_json("deployments", "list", env=env)]

    other = ok_json("deploy", stem, "--name", "other", "--replicas", "0", env=env)
    assert (other["name"], other["model"], other["replicas"]) == ("other", stem, 0)
    assert {d["name"] for d in ok_json("deployments", "list", env=env)} == {stem, "other"}

    shown = ok_json("deployments", "show", stem, env=env)
    assert shown["name"] == stem
    assert isinstance(shown["replica_list"], list)
    assert isinstance(shown["recent_failures"], list)

    scaled = ok_json("scale", "other", "2", env=env)
    assert (scaled["replicas"], scaled["min_replicas"], scaled["max_replicas"]) == (2, 2, 2)
    bounded = ok_json("scale", "other", "--min", "0", "--max", "8", "--idle", "60", env=env)
    assert (bounded["replicas"], bounded["min_replicas"], bounded["max_replicas"]) == (2, 0, 8)
    assert bounded["idle_s"] == 60
    shown_text = " ".join(ok("deployments", "show", "other", env=env).split())  # unwrapped
    assert "autoscaled 0..8 (8 in flight per replica, zero after 60 s idle)" in shown_text

    auto = ok_json(
        "deploy", stem, "--name", "auto", "--min", "1", "--max", "8",
        "--regions", "us,me", "--tier", "flex", "--ttft-target-ms", "500", env=env,
    )  # fmt: skip
    assert (auto["replicas"], auto["min_replicas"], auto["max_replicas"]) == (1, 1, 8)
    assert (auto["regions"], auto["tier"], auto["ttft_target_ms"]) == (["me", "us"], "flex", 500)
    ok("deployments", "delete", "auto", env=env)

    ok("deployments", "delete", "other", env=env)
    assert [d["name"] for d in ok_json("deployments", "list", env=env)] == [stem]


@sqlite
def test_a_deployment_is_made_private_to_a_customer_and_public_again(
    server: LiveServer, tiny_model: Path
) -> None:
    """`deploy --customer`, `deployments update --public | --customer`; list and show say who."""
    env = server_env(server)
    ok("orgs", "create", "acme", "--kind", "customer", env=env)
    private = ok_json("deploy", str(tiny_model), "--replicas", "0", "--customer", "acme", env=env)
    assert private["customer"] == "acme"
    assert "for customer acme only" in " ".join(
        ok("deployments", "show", private["name"], env=env).split()
    )
    assert (
        ok_json("deployments", "update", private["name"], "--public", env=env)["customer"] is None
    )
    assert "public" in ok("deployments", "list", env=env)
    back = ok_json("deployments", "update", private["name"], "--customer", "acme", env=env)
    assert back["customer"] == "acme"
    both = failed(
        "deployments", "update", private["name"], "--public", "--customer", "acme", env=env
    )
    assert "exclude each other" in both.stderr


@sqlite
def test_connection_comes_from_up_json_and_is_explained_when_missing(
    server: LiveServer, tmp_path: Path
) -> None:
    """Without env or --server the CLI points at `hashgrid up`; with <home>/up.json it works."""
    empty = tmp_path / "empty-home"
    empty.mkdir()
    missing = failed("--home", str(empty), "sites", "list", "--json", env=base_env())
    assert "hashgrid up" in missing.stderr, missing.stderr

    home = tmp_path / "up-home"
    home.mkdir()
    up = {
        "gateway_url": "http://127.0.0.1:1/v1",
        "api_key": "sk-hg-unused",
        "server_url": server.url,
        "admin_token": ADMIN_TOKEN,
    }
    (home / "up.json").write_text(json.dumps(up))
    assert ok_json("--home", str(home), "sites", "list", env=base_env()) == []
    # After the command's name too, as `hashgrid up --home` takes it.
    assert ok_json("sites", "list", "--home", str(home), env=base_env()) == []
    assert ok_json("sites", "list", "--json", "--home", str(home), env=base_env()) == []
    # The command's own option wins over the environment's.
    elsewhere = base_env(HASHGRID_HOME=str(empty))
    assert ok_json("nodes", "list", "--home", str(home), env=elsewhere) == []


def test_every_command_takes_the_connection_options_after_its_name() -> None:
    """--home, --server and --token are accepted by every command, or it has its own."""

    def leaves(command: Any, path: str) -> list[tuple[str, set[str]]]:
        if isinstance(command, TyperGroup):
            return [
                x for name, sub in command.commands.items() for x in leaves(sub, f"{path} {name}")
            ]
        return [(path, {opt for p in command.params for opt in p.opts})]

    found = leaves(typer.main.get_command(app), "hashgrid")
    assert len(found) > 30
    for path, options in found:
        assert "--home" in options, path
        if path.split()[1] not in {"up", "server", "gateway", "agent"}:
            assert {"--server", "--token"} <= options, path


def test_a_stopped_control_plane_is_one_line_naming_its_url_not_a_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = base_env(HASHGRID_SERVER=url, HASHGRID_TOKEN=ADMIN_TOKEN)
    for command in (
        ["nodes", "list"],
        ["sites", "create", "x", "--region", "r", "--country", "US", "--power-mw", "1"],
    ):
        result = failed(*command, env=env)
        assert result.stderr.strip().splitlines() == [
            f"error: cannot reach the control plane at {url} (ConnectError): is `hashgrid up` "
            "or `hashgrid server` running? (set HASHGRID_SERVER or --server)"
        ]


@sqlite
def test_wrong_token_is_a_readable_401_not_a_traceback(server: LiveServer) -> None:
    """A bad admin token exits non-zero with a 401 message, for writes and for lists."""
    env = server_env(server, token="hg_admin_wrong")
    create = failed("orgs", "create", "acme", "--kind", "customer", "--json", env=env)
    assert "401" in create.stderr, create.stderr
    listing = failed("sites", "list", "--json", env=env)
    assert "401" in listing.stderr, listing.stderr


def test_help_lists_the_main_commands() -> None:
    """`hashgrid --help` names the process commands and the resource groups."""
    text = ok("--help", env=base_env())
    for command in (
        "up", "server", "gateway", "agent", "deploy", "sites", "nodes", "deployments", "keys",
        "models", "signup", "login", "logout", "whoami", "tokens", "members", "invites", "audit",
    ):  # fmt: skip
        assert f" {command} " in text, (command, text)


@sqlite
def test_models_add_takes_a_download_source_with_its_size(server: LiveServer) -> None:
    """A model nodes download (URL or hf://) is added with its size; one source is required."""
    env = server_env(server)
    model = ok_json(
        "models", "add", "remote", "--source", "hf://org/repo/model.gguf@v1",
        "--size", "123456", env=env,
    )  # fmt: skip
    assert (model["source"], model["size_bytes"]) == ("hf://org/repo/model.gguf@v1", 123456)
    assert "--size" in failed("models", "add", "x", "--source", "https://h/m.gguf", env=env).stderr
    assert "exactly one" in failed("models", "add", "y", env=env).stderr


@sqlite
def test_models_add_takes_a_safetensors_repository_for_a_gpu_engine(
    server: LiveServer, tmp_path: Path
) -> None:
    """hf://OWNER/REPO[@REV] and a folder are repositories: safetensors, served by vLLM unless
    another engine that serves them is named; llama.cpp is refused with the reason."""
    env = server_env(server)
    repo = "hf://Qwen/Qwen2.5-0.5B-Instruct@7ae557604adf67be50417f59c2c2f167def9a775"
    model = ok_json("models", "add", "qwen", "--source", repo, "--size", "988000000", env=env)
    assert (model["format"], model["engine"], model["source"]) == ("safetensors", "vllm", repo)
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x" * 1000)
    local = ok_json("models", "add", "qwen-local", "--path", str(folder), "--engine", "sglang",
                    env=env)  # fmt: skip
    assert (local["format"], local["engine"], local["size_bytes"]) == (
        "safetensors",
        "sglang",
        1002,
    )
    refused = failed("models", "add", "q3", "--source", repo, "--size", "1", "--engine",
                     "llamacpp", env=env)  # fmt: skip
    assert "llamacpp serves gguf models, not safetensors" in refused.stderr


@sqlite
def test_models_add_reads_a_repositorys_size_and_architecture_from_the_hub(
    server: LiveServer,
) -> None:
    config = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64}
    files = {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": b"w" * 5000,
        "pytorch_model.bin": b"not fetched, not counted" * 100,
    }
    with hub_in_thread({"org/tiny": files}) as hub:
        env = {**server_env(server), "HF_ENDPOINT": hub.url}
        model = ok_json("models", "add", "tiny-hub", "--source", "hf://org/tiny", env=env)
        assert not hub.downloads("model.safetensors")
    assert model["size_bytes"] == 5000 + len(files["config.json"])
    assert model["architecture"] == {
        "layers": 2, "kv_heads": 4, "head_dim": 16, "kv_bytes_per_element": 2,
    }  # fmt: skip
    assert (model["format"], model["engine"]) == ("safetensors", "vllm")
    gone = failed("models", "add", "x", "--source", "hf://org/tiny", env=env)  # hub stopped
    assert "give --size" in gone.stderr


POWER_MODEL = {
    "asics": [{"model": "Antminer S21", "count": 200}],  # 0.7 MW
    "price": {"kind": "time_of_use", "usd_per_mwh": [30.0] * 17 + [300.0] * 4 + [30.0] * 3},
    "hashprice": {"kind": "constant", "usd_per_ph_day": 50.0},
}


@sqlite
def test_operator_plans_curtails_and_restores_a_site(server: LiveServer, tmp_path: Path) -> None:
    env = server_env(server)
    ok("sites", "create", "tx", "--region", "us-south", "--country", "US", "--power-mw", "1",
       env=env)  # fmt: skip
    model = tmp_path / "tx-power.json"
    model.write_text(json.dumps(POWER_MODEL))
    assert "power model of tx set" in ok("power", "set", "tx", str(model), env=env)

    chart = tmp_path / "plan.png"
    out = ok("power", "plan", "tx", "--hours", "24", "--start", "2026-11-21T00:00:00Z",
             "--chart", str(chart), env=env)  # fmt: skip
    assert "mining MW" in out
    assert "2026-11-21 17:00" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hours = ok_json("power", "plan", "tx", "--hours", "24", "--start", "2026-11-21T00:00:00Z",
                    env=env)["intervals"]  # fmt: skip
    # Above the S21's worth ($119/MWh) the miners sleep: the evening peak at $300.
    assert [h["mining_mw"] for h in hours[16:22]] == [0.7, 0, 0, 0, 0, 0.7]

    # A grid call sheds what runs now: at a flat price the miners run whatever the hour (at the
    # evening peak above they would be asleep already, with nothing to shed).
    model.write_text(json.dumps({**POWER_MODEL, "price": {"kind": "fixed", "usd_per_mwh": 30.0}}))
    ok("power", "set", "tx", str(model), env=env)
    event = ok_json("power", "curtail", "tx", "--to-mw", "0.2", "--reason", "drill", "--grid",
                    env=env)  # fmt: skip
    assert (event["source"], event["power_state"]) == ("grid", "active")
    assert event["asic_shed_mw"] > 0.5
    shown = ok("power", "show", "tx", env=env)
    assert "curtailment in force" in shown
    assert "GPU node busy: 10.2 kW (default: no ready node reports" in shown
    assert "restored" in ok("power", "restore", "tx", env=env)
    history = ok("power", "history", "tx", env=env)
    assert "drill" in history
    assert "energy saved $" in history

    bad = failed("power", "curtail", "nowhere", "--to-mw", "1", env=env)
    assert "no site 'nowhere'" in bad.stderr
    negative = failed("power", "curtail", "tx", "--to-mw", "-1", env=env)
    assert "target_mw" in negative.stderr
    assert ok_json("power", "history", "tx", env=env)["curtailments"][0]["reason"] == "drill"

    by = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    scheduled = ok("power", "curtail", "tx", "--to-mw", "0.2", "--by", by.isoformat(), env=env)
    begins = by - timedelta(seconds=30)  # ASICs alone: the ASIC lead before the deadline
    assert f"shedding begins {begins:%Y-%m-%d %H:%M:%S} UTC" in scheduled
    assert "curtailment scheduled" in ok("power", "show", "tx", env=env)
    assert "scheduled curtailment cancelled" in ok("power", "restore", "tx", env=env)
    no_zone = failed(
        "power", "curtail", "tx", "--to-mw", "0.2", "--by", "2026-11-21T08:00", env=env
    )
    assert "give a time zone" in no_zone.stderr

    offer = {"mw": 0.5, "price": {"kind": "constant", "usd_per_mw_h": 4.0}}
    model.write_text(json.dumps({**POWER_MODEL, "ancillary": offer}))
    ok("power", "set", "tx", str(model), env=env)
    assert "grid offer: up to 0.5 MW of ASICs at $4 per MW-h" in ok("power", "show", "tx", env=env)
