"""Progress reports of long fits, and the warnings a fit issued, kept for later surfaces.

``fit(X, callback=...)`` of :class:`~wobbledetect.NeuralCleanse` and
:class:`~wobbledetect.ModelScreen` calls ``callback(progress)`` with a :class:`FitProgress`
as the work goes on; an exception raised by the callback stops the fit (that is how the
service stops a screen whose client went away). The warnings a fit issues are also kept
in the estimator's ``warnings_``, so that a caller that does not see Python warnings (a
server thread, a client across the network) still gets every one of them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

__all__ = ["FitProgress", "report", "check_callback", "issue"]


@dataclass(frozen=True)
class FitProgress:
    """How far a fit has got: ``done`` of ``total`` units of its current ``stage``.

    Attributes
    ----------
    stage : str
        ``"cleanse"`` (units: classes whose Neural Cleanse search is finished),
        ``"sigma"`` (sigmas of the grid whose clean reference W is measured) or
        ``"wobbliness"`` (groups of sets -- the clean null sets, then each class's
        stamped sets -- whose W is measured).
    done : int
    total : int

    Examples
    --------
    >>> from wobbledetect import FitProgress
    >>> FitProgress("cleanse", 3, 10)
    FitProgress(stage='cleanse', done=3, total=10)
    """

    stage: str
    done: int
    total: int


def report(callback, stage, done, total):
    """Call ``callback(FitProgress(stage, done, total))`` unless ``callback`` is None."""
    if callback is not None:
        callback(FitProgress(stage, int(done), int(total)))


def check_callback(callback):
    """Refuse a ``callback`` that cannot be called, by name, before any work."""
    if callback is not None and not callable(callback):
        raise TypeError(
            "The 'callback' parameter of fit must be None or a callable taking one "
            f"FitProgress; got an object of type {type(callback).__name__}."
        )
    return callback


def issue(kept, warning, stacklevel=2):
    """Issue ``warning`` (a Warning instance) and append it to the list ``kept``."""
    kept.append(warning)
    warnings.warn(warning, stacklevel=stacklevel + 1)
