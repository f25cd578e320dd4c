from __future__ import annotations

import pytest

from x0tta6bl4.config import describe_settings, load_settings, parse_overrides
from x0tta6bl4.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("X0_"):
            monkeypatch.delenv(key)


def _sources(**kwargs) -> dict[str, tuple[object, str]]:
    return {row.key: (row.value, row.source) for row in describe_settings(**kwargs)}


def test_defaults_run_without_any_configuration() -> None:
    settings = load_settings()
    assert settings.mesh.byzantine is True
    assert settings.payments.enabled is False
    assert settings.ray.namespace == "x0tta6bl4"


def test_layers_win_in_order_file_env_cli(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "x0.toml"
    cfg.write_text("[mesh]\nnodes = 10\nseed = 4\nprobe_interval_s = 0.05\n")
    monkeypatch.setenv("X0_MESH__NODES", "12")
    monkeypatch.setenv("X0_MESH__SEED", "5")
    overrides = parse_overrides(["mesh.nodes=14"])
    settings = load_settings(cfg, overrides)
    assert (settings.mesh.nodes, settings.mesh.seed, settings.mesh.probe_interval_s) == (
        14,
        5,
        0.05,
    )
    sources = _sources(config_file=cfg, overrides=overrides)
    assert sources["mesh.nodes"] == (14, "cli")
    assert sources["mesh.seed"] == (5, "env")
    assert sources["mesh.probe_interval_s"] == (0.05, "file")
    assert sources["mesh.byzantine"] == (True, "default")


def test_yaml_file_and_x0_config_env(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "x0.yaml"
    cfg.write_text("mesh:\n  byzantine: false\nstorefront:\n  admin_ids: [1, 2]\n")
    monkeypatch.setenv("X0_CONFIG", str(cfg))
    settings = load_settings()
    assert settings.mesh.byzantine is False
    assert settings.storefront.admin_ids == [1, 2]


def test_secrets_are_masked(monkeypatch) -> None:
    monkeypatch.setenv("X0_STOREFRONT__BOT_TOKEN", "123456:SECRET-TOKEN")
    sources = _sources()
    assert sources["storefront.bot_token"] == ("***", "env")
    assert sources["payments.trongrid_api_key"] == ("", "default")
    assert "SECRET" not in repr(load_settings())


@pytest.mark.parametrize(
    ("override", "message", "fix"),
    [
        (
            "mesh.probe_interval_s=-1",
            r"mesh\.probe_interval_s: Input should be greater than 0",
            "X0_MESH__PROBE_INTERVAL_S",
        ),
        ("mesh.nodez=3", r"mesh\.nodez: Extra inputs are not permitted", "is not a setting"),
        ("mesh.backend=cloud", r"mesh\.backend: Input should be 'auto', 'netns'", "--set mesh"),
    ],
)
def test_invalid_values_name_the_field_and_the_fix(override, message, fix) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(overrides=parse_overrides([override]))
    assert fix in info.value.fix


def test_bad_files_and_overrides_are_clear(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[mesh\n")
    with pytest.raises(ConfigError, match="is not valid"):
        load_settings(broken)
    ini = tmp_path / "x0.ini"
    ini.write_text("")
    with pytest.raises(ConfigError, match=r"must end in \.toml"):
        load_settings(ini)
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["mesh.nodes"])


def test_list_overrides_are_json() -> None:
    settings = load_settings(overrides=parse_overrides(["storefront.admin_ids=[7, 8]"]))
    assert settings.storefront.admin_ids == [7, 8]
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_overrides(["storefront.admin_ids=[7,"])
