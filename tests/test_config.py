"""Configuration: defaults, human sizes and durations, errors that name the key, env and flags."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from vault.config import Config, ConfigError, config_from_mapping, load_config
from vault.units import format_duration, parse_duration, parse_size

REPO = Path(__file__).resolve().parent.parent


def test_example_file_documents_every_key_at_its_default() -> None:
    with open(REPO / "vault.toml.example", "rb") as fh:
        example = tomllib.load(fh)
    assert config_from_mapping(example) == config_from_mapping({})
    defaults = msgspec.to_builtins(Config(), enc_hook=float)
    for section, values in defaults.items():
        if section == "plans":
            continue
        for key in values:
            if key != "options":
                assert key in example[section], f"{section}.{key} missing from vault.toml.example"


@pytest.mark.parametrize(
    "text,expected",
    [("64KiB", 65536), ("5GiB", 5 * 1024**3), ("1TiB", 1024**4), ("0", 0), (1234, 1234), ("10MB", 10**7)],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800), (5, 5)])
def test_durations(text: str | int, expected: float) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(float(expected))) == expected


@pytest.mark.parametrize(
    "raw,key",
    [
        ({"auth": {"signupp": "open"}}, "auth.signupp"),
        ({"auth": {"signup": "maybe"}}, "auth.signup"),
        ({"plans": {"free": {"quota": "5XB"}}}, "plans.free.quota"),
        ({"uploads": {"session_ttl": "3 days"}}, "uploads.session_ttl"),
        ({"server": {"bind": "nohost"}}, "server.bind"),
        ({"plans": {"default": "gold"}}, "plans.default"),
        ({"storage": {"data_dir": 7}}, "storage.data_dir"),
        ({"bogus": {}}, "bogus"),
    ],
)
def test_bad_values_name_their_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"config key {key}\b"):
        config_from_mapping(raw)


def test_plan_tables_extend_the_defaults() -> None:
    config = config_from_mapping({"plans": {"default": "pro", "pro": {"devices": 12}, "family": {"devices": 6}}})
    assert config.plans.tiers["pro"].devices == 12
    assert config.plans.tiers["pro"].quota == 1024**4
    assert config.plans.tiers["free"].devices == 3
    assert config.plans.tiers["family"].devices == 6


def test_environment_then_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.toml"
    path.write_text('[server]\nbind = "127.0.0.1:9000"\n[storage]\ndata_dir = "/from-file"\n')
    env = {"VAULT_CONFIG": str(path), "VAULT_DATA_DIR": "/from-env"}
    config = load_config(None, environ=env)
    assert config.server.bind == "127.0.0.1:9000"
    assert config.storage.data_dir == "/from-env"
    config = load_config(None, data_dir="/from-flag", bind="127.0.0.1:1", environ={**env, "VAULT_BIND": "127.0.0.1:2"})
    assert (config.storage.data_dir, config.server.bind) == ("/from-flag", "127.0.0.1:1")
    assert load_config(None, environ={**env, "VAULT_BIND": "127.0.0.1:2"}).server.bind == "127.0.0.1:2"


def test_missing_or_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, environ={})


@pytest.mark.parametrize("size", ["0", "32KiB", "128MiB"])
def test_default_chunk_size_must_be_a_valid_chunk_size(size: str) -> None:
    with pytest.raises(ConfigError, match=r"config key uploads\.default_chunk_size"):
        config_from_mapping({"uploads": {"default_chunk_size": size}})


def test_max_single_request_size_is_at_most_64_mib() -> None:
    assert config_from_mapping({}).uploads.max_single_request_size == 16 * 1024 * 1024
    assert config_from_mapping({"uploads": {"max_single_request_size": "64MiB"}}).uploads.max_single_request_size == (
        64 * 1024 * 1024
    )
    with pytest.raises(ConfigError, match=r"config key uploads\.max_single_request_size"):
        config_from_mapping({"uploads": {"max_single_request_size": "65MiB"}})
