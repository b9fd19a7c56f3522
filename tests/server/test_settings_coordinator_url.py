"""The editor's `coordinatorUrl` is checked and normalised where the editor hands it over, as the
daemon checks it: a bad URL is refused naming the key and the form it takes."""

from __future__ import annotations

import pytest

from maestro.server.settings import Settings, SettingsError


def test_a_coordinator_url_loses_its_trailing_slash_and_blank_is_unset() -> None:
    assert Settings.from_options({"coordinatorUrl": "http://cache:8980/team/"}).coordinator_url == (
        "http://cache:8980/team"
    )
    assert Settings.from_options({"coordinatorUrl": "  "}).coordinator_url is None


def test_a_bad_coordinator_url_is_refused_with_the_key_and_the_form() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_options({"maestro": {"coordinatorUrl": "ftp://cache"}})
    assert "maestro.coordinatorUrl" in refused.value.message
    assert "must be http(s)://HOST[:PORT][/PREFIX]" in refused.value.message
