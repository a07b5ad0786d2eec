"""Python client of the wobbledetect screening service (``wobbledetect serve``).

:class:`ScreeningClient` uploads ONNX models and screens NumPy arrays on a remote server
(typically a GPU host); results come back as NumPy arrays and small dataclasses. The
numbers are those the library computes in process (:class:`~wobbledetect.WobblinessTransformer`
and :class:`~wobbledetect.LeveneBackdoorDetector`) with ``random_state=seed``.

Importing this module imports grpc; ``import wobbledetect`` alone does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import grpc

from ._exceptions import WobbledetectError
from ._grpc_codec import from_tensor, to_tensor
from ._grpc_results import (
    DIRECTIONS,
    CandidateResult,
    ModelInfo,
    ModelScreenResult,
    ScreenResult,
    ScreenWarning,
    WobblinessResult,
    model_info,
    model_screen_result,
    screen_result,
)
from .v1 import screening_pb2 as pb
from .v1 import screening_pb2_grpc

__all__ = [
    "ScreeningClient",
    "ModelInfo",
    "WobblinessResult",
    "CandidateResult",
    "ScreenResult",
    "ModelScreenResult",
    "ScreenWarning",
    "ServiceCallError",
]

#: Bytes per UploadModel message.
UPLOAD_CHUNK_BYTES = 1 << 20
#: Attempts of a call that fails with UNAVAILABLE (gRPC's retry policy; the first included).
RETRY_ATTEMPTS = 4
#: The channel's service config: round robin over the resolved addresses, and retries of
#: UNAVAILABLE calls. Every RPC may be retried: uploads are idempotent (content
#: addressed), the computations read-only. gRPC retries a call only until the server has
#: sent a response message, so a streamed screen whose progress has begun is not retried,
#: and a client-streaming upload only within gRPC's retry buffer (256 KiB by default).
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "wobbledetect.v1.ScreeningService"}, {"service": "grpc.health.v1.Health"}],
        "retryPolicy": {
            "maxAttempts": RETRY_ATTEMPTS,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
}


class ServiceCallError(WobbledetectError, RuntimeError):
    """The server answered a call with an error status.

    Attributes
    ----------
    code : grpc.StatusCode
        E.g. ``INVALID_ARGUMENT``, ``NOT_FOUND``, ``UNAUTHENTICATED``, ``RESOURCE_EXHAUSTED``.
    details : str
        The server's message.
    """

    def __init__(self, code, details, method):
        super().__init__(f"{method} failed with {code.name}: {details}")
        self.code = code
        self.details = details


class ScreeningClient:
    """A connection to a wobbledetect screening server.

    Parameters
    ----------
    address : str or list of str
        ``HOST:PORT`` of the server; or several replicas sharing one model store, as a
        list or comma-separated (``"10.0.0.1:50051,10.0.0.2:50051"``, IP addresses):
        calls are balanced over them with gRPC's ``round_robin`` policy, and a call that
        fails with ``UNAVAILABLE`` (a replica down or killed mid-call) is retried on
        another, up to :data:`RETRY_ATTEMPTS` attempts. Behind a DNS name with several
        addresses, pass ``"dns:///name:port"``: the same policies apply.
    token : str or None, default=None
        Bearer token, sent as ``authorization: Bearer <token>`` on every call.
    root_certificates : bytes or None, default=None
        PEM CA bundle that signed the server's certificate: connect with TLS. Set
        ``tls=True`` instead to use the system's trust store.
    tls : bool, default=False
        Connect with TLS even without ``root_certificates``.
    client_certificate, client_key : bytes or None, default=None
        PEM certificate chain and key presented to the server (mutual TLS).
    server_name : str or None, default=None
        Host name expected in the server's certificate, when it differs from the host
        in ``address``.
    timeout : float or None, default=None
        Default deadline of every call, in seconds (None: no deadline).
    max_message_bytes : int, default=64 MiB
        Largest message sent or received.

    See Also
    --------
    wobbledetect.WobblinessTransformer, wobbledetect.LeveneBackdoorDetector :
        What the server runs.

    Examples
    --------
    A server on this host, in process, and a one-layer model:

    >>> import tempfile
    >>> import numpy as np
    >>> import torch
    >>> from wobbledetect import to_onnx
    >>> from wobbledetect.client import ScreeningClient
    >>> from wobbledetect_service import create_server
    >>> server, port = create_server("127.0.0.1:0", store=tempfile.mkdtemp())
    >>> server.start()
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    >>> with ScreeningClient(f"127.0.0.1:{port}") as client:
    ...     model = client.upload_model(to_onnx(net, (1, 2, 2)))
    ...     rng = np.random.RandomState(0)
    ...     clean = rng.normal(size=(20, 1, 2, 2))
    ...     flat = np.zeros((20, 1, 2, 2)) + rng.normal(scale=1e-3, size=(20, 1, 1, 1))
    ...     result = client.screen(model.model_id, clean, [clean[:10], flat],
    ...                            sigma=0.5, n_samples=100, seed=0)
    ...     w = client.compute_wobbliness(model.model_id, clean[:3], sigma=0.5, seed=0)
    >>> model.input_shape, model.n_classes
    ((1, 2, 2), 3)
    >>> [c.triggered for c in result.candidates]  # the near-constant set is "smoother"
    [False, True]
    >>> w.wobbliness.shape
    (3,)
    >>> server.stop(None).wait()
    True
    """

    def __init__(
        self,
        address,
        *,
        token=None,
        root_certificates=None,
        tls=False,
        client_certificate=None,
        client_key=None,
        server_name=None,
        timeout=None,
        max_message_bytes=64 << 20,
    ):
        if (client_certificate is None) != (client_key is None):
            raise ValueError(
                "Mutual TLS needs both client_certificate and client_key (PEM); got only one."
            )
        self.address = address
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        target = channel_target(address)
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
            ("grpc.enable_retries", 1),
        ]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls or root_certificates is not None or client_certificate is not None:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=client_key,
                certificate_chain=client_certificate,
            )
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = screening_pb2_grpc.ScreeningServiceStub(self._channel)

    # -- connection ------------------------------------------------------------------

    def close(self):
        """Close the channel."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    def health(self, service="wobbledetect.v1.ScreeningService"):
        """The server's ``grpc.health.v1`` status for ``service``, e.g. ``"SERVING"``."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        response = self._call("Check", health_pb2.HealthCheckRequest(service=service), stub=stub)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    # -- model store -----------------------------------------------------------------

    def upload_model(self, model, *, chunk_bytes=UPLOAD_CHUNK_BYTES):
        """Upload an ONNX model (idempotent: the id is the SHA-256 of its bytes).

        Parameters
        ----------
        model : str, os.PathLike, bytes or onnx.ModelProto
            The ``.onnx`` file, its bytes, or the model (e.g. from
            :func:`wobbledetect.to_onnx`).
        chunk_bytes : int, default=1 MiB
            Bytes per message of the upload stream.

        Returns
        -------
        ModelInfo
            With ``created`` False when the server already had the model.
        """
        data = _model_bytes(model)
        model_id = hashlib.sha256(data).hexdigest()

        def chunks():
            yield pb.UploadModelRequest(chunk=data[:chunk_bytes], expected_model_id=model_id)
            for start in range(chunk_bytes, len(data), chunk_bytes):
                yield pb.UploadModelRequest(chunk=data[start : start + chunk_bytes])

        response = self._call("UploadModel", chunks())
        return model_info(response.model, created=response.created)

    def list_models(self):
        """Every model on the server, as a list of :class:`ModelInfo` ordered by id."""
        response = self._call("ListModels", pb.ListModelsRequest())
        return [model_info(m) for m in response.models]

    def get_model(self, model_id):
        """The :class:`ModelInfo` of one model; :class:`ServiceCallError` NOT_FOUND if absent."""
        return model_info(self._call("GetModel", pb.GetModelRequest(model_id=model_id)))

    def delete_model(self, model_id):
        """Remove a model from the server; :class:`ServiceCallError` NOT_FOUND if absent."""
        self._call("DeleteModel", pb.DeleteModelRequest(model_id=model_id))

    # -- computations ----------------------------------------------------------------

    def compute_wobbliness(
        self, model_id, X, *, sigma=None, n_samples=None, seed=None, vote_frequencies=False,
        timeout=None,
    ):
        """W_sigma (paper eq. 1-3) of every input of ``X``, computed on the server.

        Parameters
        ----------
        model_id : str
        X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
        sigma : float or None
            Noise scale; None: the server's default (the library's, 0.1).
        n_samples : int or None
            Noisy copies per input; None: 250.
        seed : int or None
            ``random_state`` of the noise, in [0, 2**32); None: the server draws one
            (returned in the result).
        vote_frequencies : bool, default=False
            Also return the class frequencies of eq. (2).
        timeout : float or None
            Deadline of this call in seconds (default: the client's).

        Returns
        -------
        WobblinessResult
        """
        request = pb.ComputeWobblinessRequest(
            model_id=model_id, inputs=to_tensor(X, "X"), return_vote_frequencies=vote_frequencies,
            **_noise_fields(sigma, n_samples, seed),
        )
        response = self._call("ComputeWobbliness", request, timeout=timeout)
        return WobblinessResult(
            wobbliness=from_tensor(response.wobbliness, name="wobbliness"),
            vote_frequencies=(
                from_tensor(response.vote_frequencies, name="vote_frequencies")
                if response.HasField("vote_frequencies") else None
            ),
            sigma=response.sigma, n_samples=response.n_samples, seed=response.seed,
            device=response.device,
        )

    def screen(
        self, model_id, clean, candidates, *, sigma=None, n_samples=None, alpha=None,
        seed=None, direction="smoother", return_wobbliness=False, calibration=None,
        on_progress=None, timeout=None,
    ):
        """Screen candidate sets for an active backdoor trigger against clean inputs.

        Parameters
        ----------
        model_id : str
        clean : array-like of shape (n_clean, *input_shape)
            Clean floating-point inputs (at least :data:`wobbledetect.MIN_SET_SIZE`,
            3); their W values form the reference.
        candidates : array-like or list of array-like
            One candidate set of shape ``(set_size, *input_shape)``, or a list of them
            (sizes may differ; at least 3 inputs each).
        sigma, n_samples, seed
            As in :meth:`compute_wobbliness`.
        alpha : float or None
            Significance level; None: 0.05.
        direction : {"smoother", "wobblier", "two-sided"}, default="smoother"
            See :class:`~wobbledetect.LeveneBackdoorDetector`.
        return_wobbliness : bool, default=False
            Also return every input's W.
        calibration : array-like of shape (n_sets, set_size, *input_shape), list, or None
            Held-out clean sets (none of them in ``clean``): each candidate then also gets
            a conformal ``calibrated_p_value`` whose false-positive rate on clean sets is
            at most ``alpha`` (send at least ``1 / alpha - 1`` sets).
        on_progress : callable or None
            ``on_progress(inputs_done, inputs_total)``, called while W is computed (the
            call then uses the streaming ``ScreenStream`` RPC).
        timeout : float or None
            Deadline of this call in seconds; past it the server stops computing.

        Returns
        -------
        ScreenResult
            Its ``warnings`` -- a reference or a set with little or nothing to test --
            are also issued as the library's warnings
            (:class:`~wobbledetect.DegenerateWobblinessWarning`,
            :class:`~wobbledetect.SmallSetWarning`).
        """
        if direction not in DIRECTIONS:
            raise ValueError(
                f"The 'direction' parameter must be one of {sorted(DIRECTIONS)}; got {direction!r}."
            )
        if not isinstance(candidates, (list, tuple)):
            candidates = [candidates]
        candidate_tensors = [to_tensor(c, f"candidates[{i}]") for i, c in enumerate(candidates)]
        calibration = [] if calibration is None else list(calibration)
        request = pb.ScreenRequest(
            model_id=model_id, clean=to_tensor(clean, "clean"), candidates=candidate_tensors,
            direction=DIRECTIONS[direction], return_wobbliness=return_wobbliness,
            calibration=[to_tensor(c, f"calibration[{i}]") for i, c in enumerate(calibration)],
            **_noise_fields(sigma, n_samples, seed),
        )
        if alpha is not None:
            request.alpha = alpha
        if on_progress is None:
            return _warned(screen_result(self._call("Screen", request, timeout=timeout)))
        response = self._stream("ScreenStream", request, timeout, lambda p: on_progress(
            p.inputs_done, p.inputs_total))
        return _warned(screen_result(response))

    def screen_model(
        self, model_id, clean, *, sigma=None, sigmas=None, max_zero_share=None, n_samples=None,
        set_size=None, n_sets=None, alpha=None, anomaly_threshold=None, max_steps=None,
        input_range=None, seed=None, return_candidates=False, on_progress=None, timeout=None,
    ):
        """Is this model backdoored, and towards which class? Screened on the server.

        The server runs :class:`~wobbledetect.ModelScreen` with ``random_state=seed``
        (the paper's section 5: Neural Cleanse candidates and their W); None leaves a
        parameter at the library's default. It takes minutes on a CPU server for a
        10-class model: pass ``on_progress`` to follow it, ``timeout`` to bound it.

        Parameters
        ----------
        model_id : str
        clean : array-like of shape (n_inputs, *input_shape)
            Clean inputs, at least ``6 * n_sets * set_size`` (1,500 by default).
        sigma : float or None
            None: chosen from clean W alone (``sigma="auto"``).
        sigmas : sequence of float or None
            The grid of the automatic sigma; None: the library's.
        max_zero_share, n_samples, set_size, n_sets, alpha, anomaly_threshold
            As in :class:`~wobbledetect.ModelScreen`.
        max_steps : int or None
            Neural Cleanse's steps per class (default 1000).
        input_range : tuple of (float, float) or None
            Valid input values, where Neural Cleanse keeps its patterns; None: (0, 1).
        seed : int or None
            In [0, 2**32); None: the server draws one (returned in the result).
        return_candidates : bool, default=False
            Also return each class's mask and pattern.
        on_progress : callable or None
            ``on_progress(stage, done, total)``, as :class:`~wobbledetect.FitProgress`.
        timeout : float or None
            Deadline of this call in seconds; past it the server stops the screen.

        Returns
        -------
        ModelScreenResult
            Its ``warnings`` are also issued as the library's warnings.
        """
        request = pb.ScreenModelRequest(
            model_id=model_id, clean=to_tensor(clean, "clean"), return_candidates=return_candidates,
            **_noise_fields(sigma, n_samples, seed),
        )
        if sigmas is not None:
            request.sigmas.extend(float(s) for s in sigmas)
        for name, value, kind in (
            ("max_zero_share", max_zero_share, float), ("set_size", set_size, int),
            ("n_sets", n_sets, int), ("alpha", alpha, float),
            ("anomaly_threshold", anomaly_threshold, float), ("max_steps", max_steps, int),
        ):
            if value is not None:
                setattr(request, name, kind(value))
        if input_range is not None:
            low, high = input_range
            request.input_min, request.input_max = float(low), float(high)
        response = self._stream("ScreenModel", request, timeout, lambda p: on_progress and on_progress(
            p.stage, p.done, p.total))
        return _warned(model_screen_result(response))

    # -- internals -------------------------------------------------------------------

    def _timeout(self, timeout):
        return self.timeout if timeout is None else timeout

    def _stream(self, name, request, timeout, on_progress):
        """Call a server-streaming RPC of progress events and one final result; pass
        each progress message to ``on_progress`` and return the result message."""
        response = None
        try:
            for event in getattr(self._stub, name)(
                request, timeout=self._timeout(timeout), metadata=self._metadata
            ):
                if event.HasField("progress"):
                    on_progress(event.progress)
                else:
                    response = event.result
        except grpc.RpcError as exc:
            raise ServiceCallError(exc.code(), exc.details(), name) from None
        if response is None:
            raise ServiceCallError(
                grpc.StatusCode.UNKNOWN,
                "the stream ended without a result event (the server must send one last); "
                "retry, and report it if it persists.",
                name,
            )
        return response

    def _call(self, name, request, *, timeout=None, stub=None):
        method = getattr(stub or self._stub, name)
        try:
            return method(request, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise ServiceCallError(exc.code(), exc.details(), name) from None


def channel_target(address):
    """The gRPC target of one address or of several replicas.

    Examples
    --------
    >>> from wobbledetect.client import channel_target
    >>> channel_target("localhost:50051")
    'localhost:50051'
    >>> channel_target(["127.0.0.1:50051", "127.0.0.1:50052"])
    'ipv4:127.0.0.1:50051,127.0.0.1:50052'
    >>> channel_target("[::1]:50051,[::1]:50052")
    'ipv6:[::1]:50051,[::1]:50052'
    >>> channel_target("a.example:1,b.example:1")
    Traceback (most recent call last):
    ...
    ValueError: Several replicas must be given as IP addresses (HOST:PORT with HOST an IPv4 or [IPv6] address), ...
    """
    import ipaddress

    if isinstance(address, str):
        addresses = [a.strip() for a in address.split(",") if a.strip()]
    else:
        addresses = [str(a).strip() for a in address]
    if not addresses:
        raise ValueError("The 'address' parameter is empty; pass HOST:PORT of the server.")
    if len(addresses) == 1:
        return addresses[0]
    families = set()
    for item in addresses:
        host = item.rpartition(":")[0].strip("[]")
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ValueError(
                "Several replicas must be given as IP addresses (HOST:PORT with HOST an IPv4 "
                f"or [IPv6] address), got {item!r}; for host names, use one DNS name that "
                "resolves to every replica, as 'dns:///NAME:PORT'."
            ) from None
    if len(families) > 1:
        raise ValueError(f"The replicas mix IPv4 and IPv6 addresses ({addresses}); use one family.")
    return f"ipv{families.pop()}:" + ",".join(addresses)


def _warned(result):
    """Issue the result's warnings as the library would have, in process; return it."""
    for warning in result.warnings:
        warnings.warn(warning.as_warning(), stacklevel=3)
    return result


def _model_bytes(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as handle:
            return handle.read()
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    raise TypeError(
        "The 'model' parameter must be the path of an .onnx file, its bytes, or an "
        f"onnx.ModelProto; got an object of type {type(model).__name__}."
    )


def _noise_fields(sigma, n_samples, seed):
    fields = {}
    if sigma is not None:
        fields["sigma"] = float(sigma)
    if n_samples is not None:
        fields["n_samples"] = int(n_samples)
    if seed is not None:
        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"The 'seed' parameter must be in [0, 2**32); got {seed!r}.")
        fields["seed"] = int(seed)
    return fields
