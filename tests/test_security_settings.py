"""Security settings: parsed at the edge, bad values named, secrets never echoed."""

from __future__ import annotations

import ipaddress

import pytest

from server.settings import DEFAULT_CORS_ORIGINS, SettingsError, load_settings

SECRET_LOOKING = "hunter2-this-is-a-secret"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COLLECTOR_HUB_API_KEYS": f"root:{SECRET_LOOKING}"}, "COLLECTOR_HUB_API_KEYS must be a comma-separated list"),
        ({"COLLECTOR_HUB_API_KEYS": f"read{SECRET_LOOKING}"}, "COLLECTOR_HUB_API_KEYS must be a comma-separated list"),
        ({"COLLECTOR_HUB_API_KEYS": "read:short"}, "at least 20 printable"),
        ({"COLLECTOR_HUB_JWT_SECRET": "too-short"}, "COLLECTOR_HUB_JWT_SECRET must be at least 32 bytes"),
        ({"COLLECTOR_HUB_JWT_PUBLIC_KEY_FILE": "/nonexistent.pem"}, "must name an existing file"),
        ({"COLLECTOR_HUB_CORS_ORIGINS": "*"}, "COLLECTOR_HUB_CORS_ORIGINS must be a comma-separated list of origins"),
        ({"COLLECTOR_HUB_CORS_ORIGINS": "https://a.example/path"}, "origins like https://host[:port]"),
        ({"COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "-1"}, "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE must be between"),
        ({"COLLECTOR_HUB_REDIS_URL": f"http://:{SECRET_LOOKING}@x"}, "COLLECTOR_HUB_REDIS_URL must be a redis://"),
        ({"COLLECTOR_HUB_TRUSTED_PROXIES": "10.0.0.0/8,nope"}, "COLLECTOR_HUB_TRUSTED_PROXIES must list"),
        ({"COLLECTOR_HUB_LOG_FORMAT": "xml"}, "COLLECTOR_HUB_LOG_FORMAT must be text or json"),
        ({"COLLECTOR_HUB_SHUTDOWN_TIMEOUT": "-5"}, "COLLECTOR_HUB_SHUTDOWN_TIMEOUT must be between"),
    ],
)
def test_bad_security_settings_are_named_and_secrets_not_echoed(env, message):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert message in str(caught.value)
    assert SECRET_LOOKING not in str(caught.value)


def test_security_settings_parse():
    settings = load_settings(
        {
            "COLLECTOR_HUB_API_KEYS": "read:aaaaaaaaaaaaaaaaaaaaaaaa, admin:bbbbbbbbbbbbbbbbbbbbbbbb",
            "COLLECTOR_HUB_CORS_ORIGINS": "https://dash.example, http://localhost:3000/",
            "COLLECTOR_HUB_TRUSTED_PROXIES": "10.0.0.5, 192.168.0.0/16",
            "COLLECTOR_HUB_REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
            "COLLECTOR_HUB_RATE_LIMIT_PER_MINUTE": "0",
        }
    )
    assert settings.api_keys == (("read", "a" * 24), ("admin", "b" * 24))
    assert settings.cors_origins == ("https://dash.example", "http://localhost:3000")
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.5"), ipaddress.ip_network("192.168.0.0/16"))
    assert settings.rate_limit_per_minute == 0
    assert "pw" not in repr(settings)
    defaults = load_settings({})
    assert defaults.cors_origins == DEFAULT_CORS_ORIGINS and defaults.rate_limit_per_minute == 60
    assert not defaults.allow_insecure and defaults.shutdown_timeout == 10


def test_tls_settings_go_together():
    with pytest.raises(SettingsError, match="go together"):
        load_settings({"COLLECTOR_HUB_TLS_CERT": __file__})
