"""Each host runs the daemons of its roles, at boot too, and listens on their ports only."""

import pytest

SERVICES = {
    "loadbalancer": ["haproxy"],
    "mta": ["postfix", "dovecot"],
    "mailstore": ["dovecot"],
}

# TCP ports each role must listen on, from every address unless noted.
LISTENING = {
    "loadbalancer": [25, 587, 465, 143, 993, 110, 995],
    "mta": [25, 587, 465],
    "mailstore": [143, 993, 110, 995, 24],
}

# Ports a role must not open: the MTA's Dovecot serves authentication on a local socket only.
NOT_LISTENING = {
    "mta": [143, 993, 110, 995, 24, 12345],
    "mailstore": [25, 587, 465],
}

PER_ROLE = {"service": SERVICES, "port": LISTENING, "closed_port": NOT_LISTENING}


@pytest.mark.clause("5.1.7")
def test_service_running(host, service):
    assert host.service(service).is_running


def test_service_enabled(host, service):
    assert host.service(service).is_enabled


def listening_tcp_ports(host) -> set[int]:
    """Return the TCP ports the host listens on, on any address."""
    return {
        int(address.rsplit(":", 1)[1])
        for address in host.socket.get_listening_sockets()
        if address.startswith("tcp://")
    }


@pytest.mark.clause("5.1.7")
def test_port_listening(host, port):
    assert port in listening_tcp_ports(host)


def test_port_closed(host, closed_port):
    assert closed_port not in listening_tcp_ports(host)
