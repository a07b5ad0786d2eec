"""The limits an operator sets on one server; every one is a ``wobbledetect serve`` option."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServiceLimits", "MiB"]

MiB = 1 << 20


@dataclass(frozen=True)
class ServiceLimits:
    """Bounds on what one request may ask of the server.

    Requests over a limit are answered ``RESOURCE_EXHAUSTED`` (they are valid, just more
    than this server accepts); values that are never valid (``n_samples <= 0``) are
    ``INVALID_ARGUMENT``.

    Parameters
    ----------
    max_message_bytes : int, default=64 MiB
        Largest message received or sent (gRPC's own limit; a larger request is refused
        by gRPC with ``RESOURCE_EXHAUSTED`` before it reaches the servicer).
    max_model_bytes : int, default=256 MiB
        Largest ONNX model the store accepts.
    max_n_samples : int, default=10000
        Largest ``n_samples`` (noisy copies per input).
    max_inputs : int, default=20000
        Most inputs in one request (clean and candidates together).
    max_forwards : int, default=50_000_000
        Most forward passes one request may cost, ``n_inputs * n_samples``.
    max_concurrent_screens : int, default=2
        Computations running at once: ``Screen``, ``ScreenStream``, ``ComputeWobbliness``,
        ``ScreenModel``,
        and the check of a model received by ``UploadModel`` (it loads and runs the
        model); receiving an upload's bytes takes no slot.
    max_queued_screens : int, default=32
        Computations waiting for a slot; one more is refused with ``RESOURCE_EXHAUSTED``
        (an upload is refused before its bytes are received).
    max_cleanse_steps : int, default=1000
        Most Neural Cleanse optimisation steps per class that one ``ScreenModel`` may
        ask for (its ``max_steps``; the library's default is 1000). Each step is
        ``batches_per_step`` (31) forward and backward passes of 32 inputs.
    chunk_forwards : int, default=16384
        Forward passes computed between two checks for cancellation (and two progress
        events): W is computed in chunks of ``max(1, chunk_forwards // n_samples)``
        inputs. Results do not depend on it.

    Examples
    --------
    >>> from wobbledetect_service.limits import ServiceLimits
    >>> ServiceLimits(max_concurrent_screens=4).max_queued_screens
    32
    >>> ServiceLimits(max_n_samples=0)
    Traceback (most recent call last):
    ...
    ValueError: ServiceLimits.max_n_samples must be a positive int; got 0.
    """

    max_message_bytes: int = 64 * MiB
    max_model_bytes: int = 256 * MiB
    max_n_samples: int = 10_000
    max_inputs: int = 20_000
    max_forwards: int = 50_000_000
    max_concurrent_screens: int = 2
    max_queued_screens: int = 32
    max_cleanse_steps: int = 1000
    chunk_forwards: int = 16_384

    def __post_init__(self):
        for name in (
            "max_message_bytes", "max_model_bytes", "max_n_samples", "max_inputs",
            "max_forwards", "max_concurrent_screens", "max_cleanse_steps", "chunk_forwards",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ServiceLimits.{name} must be a positive int; got {value!r}.")
        if not isinstance(self.max_queued_screens, int) or self.max_queued_screens < 0:
            raise ValueError(
                "ServiceLimits.max_queued_screens must be an int >= 0; got "
                f"{self.max_queued_screens!r}."
            )
