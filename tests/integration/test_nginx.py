"""The nginx text: one group per colour, the other colour as backup, the switch state, and that
nothing can be injected."""


def test_the_local_nginx_version_is_read():
    from platforms.local.nginx_binary import nginx_version

    version = nginx_version()
    assert len(version) == 3 and version >= (1, 18, 0)
