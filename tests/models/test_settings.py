from __future__ import annotations

import pytest

from models.settings import Settings


def test_defaults_run_on_embedded_parts() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///") and settings.is_stub_broker
    assert settings.storage_url.startswith("file://") and settings.queue("upload") == "chute.upload"


def test_variables_are_parsed_by_type() -> None:
    settings = Settings.from_env(
        {
            "CHUTE_MAX_RETRIES": "3",
            "CHUTE_EXTRACT_ISOLATION": "off",
            "CHUTE_THUMBNAIL_SIZES": "128, 512",
            "CHUTE_WEBHOOK_SCHEDULE": "0,0.5",
            "CHUTE_WEBHOOK_ALLOWED_HOSTS": "hooks.internal,10.1.0.0/16",
            "CHUTE_WEBHOOK_TIMEOUT_SECONDS": "2.5",
        }
    )
    assert settings.max_retries == 3 and settings.extract_isolation is False
    assert settings.thumbnail_sizes == (128, 512) and settings.webhook_schedule == (0.0, 0.5)
    assert settings.webhook_allowed_hosts == ("hooks.internal", "10.1.0.0/16")
    assert settings.webhook_timeout_seconds == 2.5


@pytest.mark.parametrize("name,value", [("CHUTE_MAX_RETRIES", "many"), ("CHUTE_EXTRACT_ISOLATION", "maybe")])
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})
