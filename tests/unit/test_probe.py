"""The mail probe's TLS client offers old protocol versions when asked to.

The cluster tests count a failed TLS 1.0 or 1.1 handshake as proof that the server rejects
those versions. That proof is sound only if the client can negotiate them with a server that
accepts them, so this test shows it can, on loopback.
"""

import socket
import ssl
import threading

import pytest

from mailfleet import pki, probe


def serve_one_handshake(listener: socket.socket, context: ssl.SSLContext) -> None:
    connection, _ = listener.accept()
    try:
        with context.wrap_socket(connection, server_side=True):
            pass
    except (OSError, ssl.SSLError):
        connection.close()


@pytest.mark.loopback
# The old versions are deprecated in Python: offering them is the point of the test.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1.1", "TLSv1.2"])
def test_probe_negotiates_old_versions(tmp_path, version):
    certificate, key = pki.ensure_host_certificate(
        tmp_path, "localhost", dns_names=["localhost"], addresses=["127.0.0.1"]
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    server.load_cert_chain(certificate, key)
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=serve_one_handshake, args=(listener, server), daemon=True)
    thread.start()

    client = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    port = listener.getsockname()[1]
    accepted = probe.handshake("127.0.0.1", port, version, "localhost", None, context=client)
    thread.join(timeout=10)
    listener.close()

    assert accepted
