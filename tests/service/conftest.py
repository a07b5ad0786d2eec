"""Shared pieces of the service tests: tiny ONNX models, in-process servers, certificates,
and the demo's backdoored digits net (trained once per session)."""

from __future__ import annotations

import datetime
import ipaddress
import time
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from wobbledetect._grpc_codec import to_tensor
from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect.v1 import screening_pb2_grpc
from wobbledetect_service.limits import ServiceLimits
from wobbledetect_service.server import build_server

TINY_SHAPE = (1, 2, 2)


def tiny_onnx(*, input_shape=TINY_SHAPE, n_classes=3, seed=0, batch="batch",
              elem_type=TensorProto.FLOAT, two_inputs=False, external=False) -> bytes:
    """A linear classifier ``flatten(x) @ W + b`` as ONNX bytes, built by hand (fast).

    The keyword arguments break it in the ways the store must refuse.
    """
    rng = np.random.RandomState(seed)
    n_in = int(np.prod([d if isinstance(d, int) else 4 for d in input_shape]))
    weights = numpy_helper.from_array(rng.randn(n_in, n_classes).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.randn(n_classes).astype(np.float32), "b")
    if external:
        weights.data_location = TensorProto.EXTERNAL
        weights.ClearField("raw_data")
        for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", "48")):
            weights.external_data.add(key=key, value=value)
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
        helper.make_node("Add", ["logits", "b"], ["scores"]),
    ]
    inputs = [helper.make_tensor_value_info("x", elem_type, [batch, *input_shape])]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 1]))
    graph = helper.make_graph(
        nodes, "tiny", inputs,
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, n_classes])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def wait_for(condition, timeout=20.0, what="condition"):
    """Poll ``condition()`` every 10 ms; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def screen_request(model_id, *, n_clean=15, n_candidate=5, sigma=0.5, n_samples=64, seed=0,
                   data_seed=None):
    """A ScreenRequest of normal inputs of :data:`TINY_SHAPE`, drawn with ``data_seed``
    (default: ``seed``, which also seeds the noise)."""
    rng = np.random.RandomState(seed if data_seed is None else data_seed)
    return pb.ScreenRequest(
        model_id=model_id, clean=to_tensor(rng.normal(size=(n_clean, *TINY_SHAPE))),
        candidates=[to_tensor(rng.normal(size=(n_candidate, *TINY_SHAPE)))],
        sigma=sigma, n_samples=n_samples, seed=seed,
    )


@dataclass
class Running:
    """A started in-process server and a channel to it."""

    built: object
    channel: grpc.Channel

    @property
    def port(self):
        return self.built.port

    @property
    def stub(self):
        return screening_pb2_grpc.ScreeningServiceStub(self.channel)


@contextmanager
def running_server(store, *, channel_credentials=None, server_name=None, **options):
    """Start ``build_server("127.0.0.1:0", ...)``; yield a :class:`Running`; stop it."""
    options.setdefault("limits", ServiceLimits())
    built = build_server("127.0.0.1:0", store=store, **options)
    built.server.start()
    target = f"127.0.0.1:{built.port}"
    channel_options = [("grpc.max_send_message_length", 256 << 20),
                       ("grpc.max_receive_message_length", 256 << 20)]
    if server_name:
        channel_options.append(("grpc.ssl_target_name_override", server_name))
    if channel_credentials is None:
        channel = grpc.insecure_channel(target, options=channel_options)
    else:
        channel = grpc.secure_channel(target, channel_credentials, options=channel_options)
    try:
        yield Running(built, channel)
    finally:
        channel.close()
        built.server.stop(None).wait()


@pytest.fixture
def server(tmp_path):
    """A default in-process server on an empty store."""
    with running_server(tmp_path / "store") as running:
        yield running


@pytest.fixture(scope="session")
def tiny_model():
    return tiny_onnx()


# -- the demo's backdoored net ---------------------------------------------------------


@dataclass
class Backdoored:
    onnx_bytes: bytes
    clean: np.ndarray  # (25, 1, 8, 8): the reference set
    clean_candidate: np.ndarray  # (25, 1, 8, 8): other clean test images
    triggered: np.ndarray  # (25, 1, 8, 8): test images with the active trigger
    backdoor_accuracy: float


@pytest.fixture(scope="session")
def backdoored_digits():
    """The demo's recipe (T1, square trigger -> class 0, DigitsCNN) at 10 epochs, as ONNX."""
    from wobbledetect.lab.screening_example import make_screening_example

    example = make_screening_example()
    return Backdoored(
        onnx_bytes=example.onnx_bytes, clean=example.clean,
        clean_candidate=example.more_clean, triggered=example.triggered,
        backdoor_accuracy=example.backdoor_accuracy,
    )


# -- certificates ----------------------------------------------------------------------


@dataclass
class Pki:
    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes
    other_ca: bytes
    other_client_cert: bytes
    other_client_key: bytes


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key):
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(subject_name, key, issuer_name, issuer_key, *, ca=False, server=False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def pki():
    """A CA, a server and a client certificate it signed, and a second, untrusted CA."""
    ca_key, other_ca_key = _key(), _key()
    server_key, client_key, other_client_key = _key(), _key(), _key()
    return Pki(
        ca=_certificate("test CA", ca_key, "test CA", ca_key, ca=True),
        server_cert=_certificate("localhost", server_key, "test CA", ca_key, server=True),
        server_key=_pem_key(server_key),
        client_cert=_certificate("client", client_key, "test CA", ca_key),
        client_key=_pem_key(client_key),
        other_ca=_certificate("other CA", other_ca_key, "other CA", other_ca_key, ca=True),
        other_client_cert=_certificate("intruder", other_client_key, "other CA", other_ca_key),
        other_client_key=_pem_key(other_client_key),
    )
