"""How many computations run at once, and how many may wait, first come first served.

Computations are the screens (``Screen``, ``ScreenStream``, ``ComputeWobbliness``) and
the check of an uploaded model (``UploadModel`` loads the model into onnxruntime and
runs it once): the same kind of work, with memory of the order of the model's size, so
one :class:`Admission` bounds them together.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager

from .errors import resource_exhausted

__all__ = ["Admission", "Abandoned"]

#: How often a waiting request checks whether its client is still there, in seconds.
POLL_SECONDS = 0.05


class Abandoned(Exception):
    """The client cancelled, or its deadline passed, while the request waited or ran."""


class Admission:
    """At most ``max_running`` computations at once, at most ``max_queued`` waiting.

    Waiting requests start in arrival order, so no client starves under load. A request
    beyond both limits is refused at once with ``RESOURCE_EXHAUSTED``; a waiting one
    gives up its place as soon as its client goes away.

    Examples
    --------
    >>> from wobbledetect_service.admission import Admission
    >>> admission = Admission(max_running=1, max_queued=0)
    >>> with admission.slot(lambda: True):
    ...     with admission.slot(lambda: True):
    ...         pass
    Traceback (most recent call last):
    ...
    wobbledetect_service.errors.ServiceError: The server is busy: 1 computations running ...
    >>> admission.running
    0
    """

    def __init__(self, max_running: int, max_queued: int):
        self.max_running = max_running
        self.max_queued = max_queued
        self._condition = threading.Condition()
        self._waiting = deque()
        self.running = 0

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiting)

    def refuse_if_full(self) -> None:
        """Raise the RESOURCE_EXHAUSTED that :meth:`slot` would raise now, if it would.

        For requests that do work before their computation: an upload refused at once,
        before its bytes are received, rather than after.
        """
        with self._condition:
            if self._full():
                raise self._busy()

    @contextmanager
    def slot(self, is_active):
        """Hold a slot for the ``with`` block; ``is_active()`` is False once the client left."""
        with self._condition:
            if self.running >= self.max_running or self._waiting:
                if self._full():
                    raise self._busy()
                ticket = object()
                self._waiting.append(ticket)
                try:
                    while self._waiting[0] is not ticket or self.running >= self.max_running:
                        if not is_active():
                            raise Abandoned()
                        self._condition.wait(POLL_SECONDS)
                finally:
                    self._waiting.remove(ticket)
                    self._condition.notify_all()  # the next in line may be able to start
            self.running += 1
        try:
            yield
        finally:
            with self._condition:
                self.running -= 1
                self._condition.notify_all()

    def _full(self) -> bool:
        """No slot free and no place in the queue (call holding the condition)."""
        busy = self.running >= self.max_running or bool(self._waiting)
        return busy and len(self._waiting) >= self.max_queued

    def _busy(self):
        return resource_exhausted(
            f"The server is busy: {self.running} computations running and "
            f"{len(self._waiting)} waiting (screens and checks of uploaded models; "
            f"max_concurrent_screens={self.max_running}, max_queued_screens="
            f"{self.max_queued}). Retry later."
        )
