"""Mutual TLS from another stack: gRPC Python (its C core, BoringSSL)
against mediastore's rustls listener, with certificates that the openssl
command line made (tests/interop/run.sh makes them and starts the server).

Environment: MEDIASTORE_TLS_ADDR, the server's address; MEDIASTORE_TLS_DIR,
the folder holding ca.pem, client.pem/client.key (mapped in the server's
principals file by the subject openssl prints), stranger.pem/stranger.key
(same CA, not mapped), foreign.pem/foreign.key (another CA) and
client.subject (what `openssl x509 -noout -subject -nameopt RFC2253`
printed for client.pem).
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("MEDIASTORE_PY_GEN", os.path.join(HERE, "gen")))

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from mediastore.v1 import media_service_pb2 as ms  # noqa: E402
from mediastore.v1 import media_service_pb2_grpc as ms_grpc  # noqa: E402

ADDR = os.environ["MEDIASTORE_TLS_ADDR"]
DIR = os.environ["MEDIASTORE_TLS_DIR"]
T = 15.0


def read(name):
    with open(os.path.join(DIR, name), "rb") as f:
        return f.read()


def channel(identity=None):
    """A TLS channel trusting the test CA, presenting `identity`'s
    certificate (a file stem) if given."""
    key = cert = None
    if identity:
        key, cert = read(identity + ".key"), read(identity + ".pem")
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"), private_key=key, certificate_chain=cert
    )
    # The server's certificate names localhost; the address is an IP.
    return grpc.secure_channel(
        ADDR, creds, options=[("grpc.ssl_target_name_override", "localhost")]
    )


def reason(err):
    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def upload(stub, name, data):
    def messages():
        yield ms.UploadMediaRequest(
            header=ms.UploadHeader(
                filename=name,
                content_type="application/octet-stream",
                size_bytes=len(data),
            )
        )
        yield ms.UploadMediaRequest(data=data)

    return stub.UploadMedia(messages(), timeout=T)


class MutualTlsTest(unittest.TestCase):
    def test_a_mapped_certificate_acts_as_its_principal_without_a_key(self):
        with channel("client") as ch:
            stub = ms_grpc.MediaServiceStub(ch)
            made = upload(stub, "by-python-cert.bin", b"from python over mTLS")
            subject = read("client.subject").decode().strip()
            self.assertEqual(made.media.created_by, subject)
            self.assertEqual(made.media.created_role, "interop")
            got = stub.GetMedia(ms.GetMediaRequest(media_id=made.media.id), timeout=T)
            self.assertEqual(got.media.size_bytes, len(b"from python over mTLS"))
            # Its scopes: no delete.
            with self.assertRaises(grpc.RpcError) as cm:
                stub.DeleteMedia(ms.DeleteMediaRequest(media_id=made.media.id), timeout=T)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
            self.assertEqual(reason(cm.exception), "SCOPE_MISSING")

    def test_an_unmapped_certificate_of_the_ca_is_unauthenticated(self):
        with channel("stranger") as ch:
            with self.assertRaises(grpc.RpcError) as cm:
                ms_grpc.MediaServiceStub(ch).ListMedia(ms.ListMediaRequest(), timeout=T)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            self.assertEqual(reason(cm.exception), "CERTIFICATE_UNMAPPED")
            # Health needs no principal, only the handshake.
            h = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=T
            )
            self.assertEqual(h.status, health_pb2.HealthCheckResponse.SERVING)

    def test_no_certificate_or_a_foreign_one_fails_the_handshake(self):
        for identity in (None, "foreign"):
            with self.subTest(identity=identity), channel(identity) as ch:
                with self.assertRaises(grpc.RpcError) as cm:
                    health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=5
                    )
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
