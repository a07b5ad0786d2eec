"""Count the detector's warnings over a sweep instead of printing them by the hundred.

A sigma sweep or a figure tests many sets at sigmas that are too small on purpose, so
:class:`~wobbledetect.DegenerateWobblinessWarning` and friends come once per fit and per
test. The lab's jobs (the demo, the figures) count them per kind, keep the first
message, log one line per kind and save the counts with their results.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

from .._exceptions import WobbledetectWarning

__all__ = ["counting_library_warnings", "summary_lines"]


@contextmanager
def counting_library_warnings():
    """Count the library's warnings issued in the block; other warnings pass through.

    Yields a dict, filled when the block ends: ``{category name: {"count": n, "first":
    message}}``. Single-threaded use only (it sets the process's warning filters).

    Examples
    --------
    >>> import warnings
    >>> from wobbledetect import SmallSetWarning
    >>> from wobbledetect.lab.warning_counts import counting_library_warnings
    >>> with counting_library_warnings() as counted:
    ...     for _ in range(3):
    ...         warnings.warn(SmallSetWarning("row 0 of W: 2 value(s) left"))
    >>> counted
    {'SmallSetWarning': {'count': 3, 'first': 'row 0 of W: 2 value(s) left'}}
    """
    counted = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WobbledetectWarning)
        yield counted
    for w in caught:
        if issubclass(w.category, WobbledetectWarning):
            entry = counted.setdefault(w.category.__name__, {"count": 0, "first": str(w.message)})
            entry["count"] += 1
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def summary_lines(counted, what):
    """One line per kind of warning: ``"<what>: 12 DegenerateWobblinessWarning(s), the first: ..."``."""
    return [f"{what}: {entry['count']} {category}(s), the first: {entry['first']}"
            for category, entry in counted.items()]
