"""Webhook notices (cutover/notify.py) against a real HTTP receiver on loopback: what a channel
reads for each event, and that a webhook that fails or hangs never holds up the cutover."""

from __future__ import annotations

import pytest

from cutover import notify
from tests.support.receiver import SECRET


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://hooks.example.com/{SECRET}",
        f"hooks.slack.com/services/{SECRET}",
        f"https:///{SECRET}",
        f"https://hooks.example.com/{SECRET} x",
        f"https://hooks.example.com:port/{SECRET}",
    ],
)
def test_a_bad_url_is_refused_naming_the_key_and_what_is_allowed_without_the_secret(url):
    with pytest.raises(notify.BadUrl) as err:
        notify.checked(url, "live")
    message = str(err.value)
    assert message.startswith(
        'bluegreen:webhookUrl of stack "live" must be an http:// or https:// URL with a host'
    )
    assert SECRET not in message and "s3cr" not in message
    assert "pulumi config set --secret --stack live bluegreen:webhookUrl <url>" in message


def test_a_good_url_passes():
    url = f"https://hooks.slack.com/services/{SECRET}"
    assert notify.checked(f" {url}\n", "live") == url
