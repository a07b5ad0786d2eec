"""Acceptance 2: bearer tokens, TLS and mutual TLS (certificates generated in the test),
and the refusal to listen beyond loopback without authentication."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from wobbledetect._grpc_codec import to_tensor
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect_service.server import build_server, check_exposure, is_loopback

from .conftest import TINY_SHAPE, running_server

TOKENS = ["s3cret-one", "s3cret-two"]
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def _every_kind_of_call(stub, metadata, model_bytes):
    """Status of one call of each kind: unary, client streaming, server streaming."""
    screen = pb.ScreenRequest(
        model_id="0" * 64, clean=to_tensor(np.zeros((2, *TINY_SHAPE))),
        candidates=[to_tensor(np.zeros((2, *TINY_SHAPE)))],
    )
    calls = {
        "ListModels": lambda: stub.ListModels(pb.ListModelsRequest(), metadata=metadata),
        "UploadModel": lambda: stub.UploadModel(
            iter([pb.UploadModelRequest(chunk=model_bytes)]), metadata=metadata),
        "ScreenStream": lambda: list(stub.ScreenStream(screen, metadata=metadata)),
    }
    codes = {}
    for name, call in calls.items():
        try:
            call()
            codes[name] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            codes[name] = exc.code()
            if exc.code() == UNAUTHENTICATED:
                assert "authorization: Bearer <token>" in exc.details()
    return codes


@pytest.mark.parametrize("metadata", [
    None,
    (("authorization", "Bearer wrong"),),
    (("authorization", "Bearer s3cret-one-and-more"),),
    (("authorization", "Bearer s3cret-on"),),
    (("authorization", "Basic s3cret-one"),),
    (("authorization", "s3cret-one"),),
    (("x-token", "s3cret-one"),),
], ids=["missing", "wrong", "longer", "prefix", "basic-scheme", "no-scheme", "other-key"])
def test_calls_without_a_valid_token_are_unauthenticated(tmp_path, tiny_model, metadata):
    with running_server(tmp_path / "store", tokens=TOKENS) as server:
        codes = _every_kind_of_call(server.stub, metadata, tiny_model)
        assert codes == dict.fromkeys(codes, UNAUTHENTICATED)
        assert list(server.built.store.models_dir.iterdir()) == []  # nothing uploaded
        assert server.built.servicer.stats.started == 0  # nothing computed


def test_either_configured_token_is_accepted_and_health_needs_none(tmp_path, tiny_model):
    with running_server(tmp_path / "store", tokens=TOKENS) as server:
        for token in TOKENS:
            codes = _every_kind_of_call(
                server.stub, (("authorization", f"Bearer {token}"),), tiny_model)
            # Authenticated: the calls reach the servicer (the screen's model id is unknown).
            assert codes == {"ListModels": grpc.StatusCode.OK, "UploadModel": grpc.StatusCode.OK,
                             "ScreenStream": grpc.StatusCode.NOT_FOUND}
        health = health_pb2_grpc.HealthStub(server.channel)
        response = health.Check(health_pb2.HealthCheckRequest(service=""))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
        # Reflection is not exempt: the token guards everything but health.
        reflection = reflection_pb2_grpc.ServerReflectionStub(server.channel)
        with pytest.raises(grpc.RpcError) as refused:
            list(reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        assert refused.value.code() == UNAUTHENTICATED


def _tls_channel_call(port, credentials, metadata=None):
    channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
    try:
        from wobbledetect.v1 import screening_pb2_grpc

        stub = screening_pb2_grpc.ScreeningServiceStub(channel)
        stub.ListModels(pb.ListModelsRequest(), timeout=10, metadata=metadata)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        channel.close()


def test_tls_serves_clients_that_trust_the_ca_and_no_one_else(tmp_path, pki):
    token = (("authorization", f"Bearer {TOKENS[0]}"),)
    with running_server(tmp_path / "store", tokens=TOKENS, tls_cert=pki.server_cert,
                        tls_key=pki.server_key,
                        channel_credentials=grpc.ssl_channel_credentials(pki.ca)) as server:
        assert server.stub.ListModels(pb.ListModelsRequest(), metadata=token).models == []
        # TLS does not replace the token.
        assert _tls_channel_call(server.port, grpc.ssl_channel_credentials(pki.ca)) == UNAUTHENTICATED
        # A client that trusts another CA rejects the server's certificate.
        assert _tls_channel_call(
            server.port, grpc.ssl_channel_credentials(pki.other_ca), token
        ) == grpc.StatusCode.UNAVAILABLE
        # A plaintext client cannot talk to a TLS port.
        plain = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        with pytest.raises(grpc.RpcError) as failed:
            from wobbledetect.v1 import screening_pb2_grpc

            screening_pb2_grpc.ScreeningServiceStub(plain).ListModels(
                pb.ListModelsRequest(), timeout=10, metadata=token)
        plain.close()
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(tmp_path, pki):
    trusted = grpc.ssl_channel_credentials(pki.ca, pki.client_key, pki.client_cert)
    with running_server(tmp_path / "store", tls_cert=pki.server_cert, tls_key=pki.server_key,
                        tls_client_ca=pki.ca, channel_credentials=trusted) as server:
        assert _tls_channel_call(server.port, trusted) == grpc.StatusCode.OK
        assert _tls_channel_call(
            server.port, grpc.ssl_channel_credentials(pki.ca)) == grpc.StatusCode.UNAVAILABLE
        intruder = grpc.ssl_channel_credentials(pki.ca, pki.other_client_key, pki.other_client_cert)
        assert _tls_channel_call(server.port, intruder) == grpc.StatusCode.UNAVAILABLE


def test_non_loopback_addresses_need_tokens_or_mutual_tls_unless_insecure(tmp_path):
    for address in ("0.0.0.0:0", "[::]:0", "192.0.2.1:0", "example.org:0", ":0"):
        assert not is_loopback(address)
        with pytest.raises(ValueError, match="Refusing to listen .* --insecure"):
            build_server(address, store=tmp_path / "store")
    assert not (tmp_path / "store").exists()  # refused before touching anything
    for allowed in (dict(tokens=["t"]), dict(client_ca=True), dict(insecure=True)):
        options = dict(tokens=[], tls=True, client_ca=False, insecure=False) | allowed
        check_exposure("0.0.0.0:50051", **options)  # does not raise
    for address in ("127.0.0.1:0", "127.8.9.10:1", "localhost:0", "[::1]:0", "unix:/tmp/s"):
        assert is_loopback(address)
        check_exposure(address, tokens=[], tls=False, client_ca=False, insecure=False)


def test_tls_half_configured_is_refused(tmp_path, pki):
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        build_server("127.0.0.1:0", store=tmp_path, tls_cert=pki.server_cert)
    with pytest.raises(ValueError, match="tls_client_ca .* needs tls_cert"):
        build_server("127.0.0.1:0", store=tmp_path, tls_client_ca=pki.ca)
