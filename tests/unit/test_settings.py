"""Settings: defaults <- TOML file <- HOTLINE_* environment, and clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hotline.config.settings import Settings, SettingsError, load_settings, unknown_env


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hotline.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_nothing_set_runs_embedded() -> None:
    s = load_settings(env={})
    assert s.database.url == "sqlite+aiosqlite:///var/hotline.db"
    assert s.redis.url == ""
    assert s.server.agi_host == "127.0.0.1" and s.server.agi_port == 4573
    assert s.city.timezone == "Asia/Shanghai"
    assert s.ivr.menu["1"] == "consultation"


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[server]\nagi_port = 5000\nhttp_port = 9000\n[ivr.menu]\n"5" = "help"\n'
    )
    s = load_settings(path, env={"HOTLINE_SERVER_AGI_PORT": "6000"})
    assert s.server.agi_port == 6000  # environment wins
    assert s.server.http_port == 9000  # file wins over default
    assert s.ivr.menu == {"5": "help"}


def test_config_file_can_come_from_hotline_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[database]\nurl = "postgresql+asyncpg://u@127.0.0.1/db"\n')
    s = load_settings(env={"HOTLINE_CONFIG": str(path)})
    assert s.database.url.startswith("postgresql+asyncpg://")


def test_settings_are_frozen() -> None:
    s = load_settings(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.server.agi_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "key", "expected"),
    [
        ({"HOTLINE_SERVER_AGI_PORT": "abc"}, "server.agi_port", "an integer"),
        ({"HOTLINE_SERVER_AGI_PORT": "70000"}, "server.agi_port", "between 1 and 65535"),
        ({"HOTLINE_SERVER_AGI_IDLE_TIMEOUT": "-1"}, "server.agi_idle_timeout", "greater than 0"),
        ({"HOTLINE_DATABASE_URL": "mysql://x"}, "database.url", "postgresql+asyncpg"),
        ({"HOTLINE_REDIS_URL": "http://x"}, "redis.url", "redis://"),
        ({"HOTLINE_CITY_TIMEZONE": "Mars/Base"}, "city.timezone", "IANA time zone"),
        ({"HOTLINE_LOG_LEVEL": "LOUD"}, "log.level", "one of DEBUG"),
        ({"HOTLINE_IVR_MENU": "1=x"}, "ivr.menu", "routes among consultation"),
        ({"HOTLINE_IVR_MENU": "1"}, "ivr.menu", "key=value,key=value"),
        ({"HOTLINE_CALLBACK_SPACING": "busy=10"}, "callback.spacing", "seconds for each outcome"),
        ({"HOTLINE_CALLBACK_WINDOW": "20:00-09:00"}, "callback.window", "start before end"),
        ({"HOTLINE_CALLBACK_DAYS": "128"}, "callback.days", "ISO weekdays"),
        ({"HOTLINE_SERVER_AGI_ALLOWED_PEERS": "10.0.0.300"}, "server.agi_allowed_peers", "IP"),
        ({"HOTLINE_SERVER_AGI_SECRET": "too-short"}, "server.agi_secret", "16 to 256"),
    ],
)
def test_bad_environment_values_name_the_key_and_the_expected_form(
    env: dict[str, str], key: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env=env)
    assert info.value.key == key
    assert expected in str(info.value)
    assert next(iter(env)) in str(info.value)  # says where the value came from


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nagi_prot = 1\n", "server.agi_prot"),
        ("[serverr]\n", "serverr"),
        ('[server]\nagi_port = "4573"\n', "server.agi_port"),
        ("[server]\nagi_port = true\n", "server.agi_port"),
        ('[ivr.menu]\n"12" = "help"\n', "ivr.menu"),
        ('[ivr.menu]\n"1" = "not a route"\n', "ivr.menu"),
        ("server = 1\n", "server"),
        ("[server\n", "--config"),
    ],
)
def test_bad_file_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(write(tmp_path, text), env={})
    assert info.value.key == key
    assert str(tmp_path) in str(info.value)


def test_missing_config_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="an existing TOML file"):
        load_settings(tmp_path / "nope.toml", env={})


def test_environment_numbers_and_floats_are_coerced() -> None:
    s = load_settings(env={"HOTLINE_SERVER_SHUTDOWN_GRACE": "2.5", "HOTLINE_IVR_ATTEMPTS": "4"})
    assert s.server.shutdown_grace == 2.5 and s.ivr.attempts == 4


def test_unknown_hotline_variables_are_reported_as_likely_typos() -> None:
    env = {"HOTLINE_DATABASE_URL": "x", "HOTLINE_DATABSE_URL": "y", "HOTLINE_CONFIG": "z"}
    assert unknown_env(env) == ["HOTLINE_DATABSE_URL"]


def test_every_setting_has_an_environment_name_that_round_trips() -> None:
    s = Settings()
    for section in dataclasses.fields(s):
        for f in dataclasses.fields(getattr(s, section.name)):
            assert unknown_env({f"HOTLINE_{section.name}_{f.name}".upper(): "1"}) == []


def test_changing_one_prompt_text_keeps_the_others(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[prompts.texts]\nwelcome = "您好"\n'), env={})
    assert s.prompts.texts["welcome"] == "您好"
    assert s.prompts.texts["fallback"] and s.prompts.texts["menu"]  # still there


def test_a_prompt_the_flows_play_cannot_be_emptied(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="missing: fallback"):
        load_settings(write(tmp_path, '[prompts.texts]\nfallback = ""\n'), env={})


@pytest.mark.parametrize(
    ("env", "key"),
    [
        (
            {"HOTLINE_DATABASE_URL": "postgresql+asyncpg://h:x@127.0.0.1:notaport/db"},
            "database.url",
        ),
        ({"HOTLINE_IVR_ATTEMPTS": "²"}, "ivr.attempts"),
        ({"HOTLINE_SERVER_AGI_IDLE_TIMEOUT": "inf"}, "server.agi_idle_timeout"),
        ({"HOTLINE_SERVER_AGI_IDLE_TIMEOUT": "nan"}, "server.agi_idle_timeout"),
        ({"HOTLINE_LAB_INSTANCE": "../etc"}, "lab.instance"),
        ({"HOTLINE_CITY_OFFICE_HOURS": "13:30-17:30,08:30-12:00"}, "city.office_hours"),
        ({"HOTLINE_WATCH_SMS": "http"}, "watch.sms_url"),  # a gateway needs its address
        ({"HOTLINE_WATCH_SMS": "carrier-pigeon"}, "watch.sms"),
        ({"HOTLINE_WATCH_REMIND_SIGN_HOURS": "-1"}, "watch.remind_sign_hours"),
    ],
)
def test_values_that_would_fail_later_are_refused_up_front(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env=env)
    assert info.value.key == key


def test_unreadable_or_non_utf8_config_files_are_settings_errors(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="readable file"):
        load_settings(tmp_path, env={})  # a directory
    gbk = tmp_path / "gbk.toml"
    gbk.write_bytes('[prompts.texts]\nwelcome = "您好"\n'.encode("gbk"))
    with pytest.raises(SettingsError, match="UTF-8"):
        load_settings(gbk, env={})


def test_fastagi_trusts_loopback_and_nobody_without_a_secret_by_default() -> None:
    s = load_settings(env={})
    assert s.server.agi_allowed_peers == "127.0.0.0/8,::1"
    assert s.server.agi_secret == ""  # the server then refuses every session


@pytest.mark.parametrize(
    "peers", ["127.0.0.1", "10.0.0.0/8, 192.168.1.7", "::1,fd00::/8", "127.0.0.0/8,::1"]
)
def test_allowed_peers_are_addresses_and_networks(peers: str) -> None:
    s = load_settings(env={"HOTLINE_SERVER_AGI_ALLOWED_PEERS": peers})
    assert s.server.agi_allowed_peers == peers


@pytest.mark.parametrize(
    "peers", ["", "127.0.0.1,", "localhost", "10.0.0.1/8", "127.0.0.0/33", "0.0.0.0/-1"]
)
def test_allowed_peers_that_are_not_networks_stop_start_up(peers: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"HOTLINE_SERVER_AGI_ALLOWED_PEERS": peers})
    assert info.value.key == "server.agi_allowed_peers"


@pytest.mark.parametrize(
    "secret", ["x" * 15, "sixteen chars ok", "0123456789abcdef&x=1", "秘密" * 10]
)
def test_an_agi_secret_must_be_long_and_fit_a_url_as_it_is(secret: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"HOTLINE_SERVER_AGI_SECRET": secret})
    assert info.value.key == "server.agi_secret"


def test_an_agi_secret_from_the_file_or_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nagi_secret = "from-the-file-0123456789"\n')
    assert load_settings(path, env={}).server.agi_secret == "from-the-file-0123456789"
    env = {"HOTLINE_SERVER_AGI_SECRET": "Z" * 32}
    assert load_settings(path, env=env).server.agi_secret == "Z" * 32


def test_a_secret_that_does_not_fit_is_named_but_never_echoed() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"HOTLINE_SERVER_AGI_SECRET": "too short!"})
    assert "server.agi_secret" in str(info.value) and "too short!" not in str(info.value)


def test_config_show_hides_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    from hotline.cli import main

    env = {"HOTLINE_SERVER_AGI_SECRET": "s" * 20 + "-visible", "HOTLINE_ARI_PASSWORD": "pw-xyz"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "-visible" not in out and "pw-xyz" not in out and "agi_secret = '<hidden> (set)'" in out
