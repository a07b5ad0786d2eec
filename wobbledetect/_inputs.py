"""What a batch of inputs must be before noise is added to it: the one place that checks it.

The transformer, the gRPC service and the ``wobbledetect screen`` command all call
:func:`check_inputs` (the CLI and the client also :func:`check_floating`), so a user
gets the same message whichever surface they use.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from ._exceptions import InputDtypeError, InputShapeError, InputValueError

__all__ = ["check_inputs", "check_floating", "check_input_shape", "check_bool",
           "check_input_range", "validate_fit_inputs", "validate_inputs"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_floating(X, name="X"):
    """Refuse integer and boolean inputs, saying how to scale them.

    Gaussian noise of scale ``sigma`` is added in the model's input space, so the scale
    of ``X`` matters and is never guessed: 8-bit pixels are 0-255, while most models
    take [0, 1] or standardised values. Floating-point arrays (float16/32/64), lists of
    Python floats and DataFrames of float columns pass.

    Parameters
    ----------
    X : array-like
    name : str, default="X"
        What to call ``X`` in the message (a parameter, a request field, a file).

    Raises
    ------
    InputDtypeError
        Integer or boolean data. (Complex, string and object data are left to the
        array conversion that follows, which refuses what it cannot read as floats.)

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect import check_floating
    >>> check_floating(np.zeros((2, 3), dtype=np.float32))
    >>> check_floating(np.zeros((2, 3), dtype=np.uint8))
    Traceback (most recent call last):
    ...
    wobbledetect._exceptions.InputDtypeError: X has dtype uint8, not floating point. ...
    """
    dtype = _dtype_of(X)
    if dtype is None or dtype.kind not in "iub":
        return  # floats pass; complex, strings and objects get NumPy's or sklearn's own errors
    var = name if name.isidentifier() else "X"
    raise InputDtypeError(
        f"{name} has dtype {dtype}, not floating point. W adds Gaussian noise of scale "
        "sigma in the model's input space, so the scale of the inputs matters and is "
        f"never guessed. If {var} holds 8-bit pixels and the model takes [0, 1], pass "
        f"{var}.astype(np.float32) / 255; if the integers already are the model's input "
        f"values, pass {var}.astype(np.float32)."
    )


def check_inputs(X, input_shape, *, name="X", max_lead=2, hint=""):
    """Check a batch of inputs and flatten it to ``(n_inputs, *input_shape)`` float32.

    Parameters
    ----------
    X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
        Floating-point inputs in the model's input space.
    input_shape : tuple of int
        Shape of one input.
    name : str, default="X"
        What to call ``X`` in messages.
    max_lead : {1, 2}, default=2
        How many leading axes ``X`` may have: 1 for a flat batch only, 2 to also
        accept a batch of sets.
    hint : str, default=""
        Appended to the shape error's advice, e.g. ``", or pass input_shape=..."``.

    Returns
    -------
    inputs : ndarray of shape (n_inputs, *input_shape), float32, C-contiguous
    lead : tuple of int
        The leading shape ``X`` came in: ``(n_inputs,)`` or ``(n_sets, set_size)``.

    Raises
    ------
    InputDtypeError
        Not floating point (see :func:`check_floating`).
    InputShapeError
        Not a batch of inputs of ``input_shape`` (a single input without its batch
        axis is named as such).
    InputValueError
        NaN or inf, or float64 values beyond float32's range (the model's precision,
        where they would become inf and get W = 0).

    Examples
    --------
    >>> import numpy as np
    >>> from wobbledetect import check_inputs
    >>> inputs, lead = check_inputs(np.zeros((3, 25, 1, 8, 8)), (1, 8, 8))
    >>> inputs.shape, inputs.dtype, lead
    ((75, 1, 8, 8), dtype('float32'), (3, 25))
    >>> check_inputs(np.zeros((1, 8, 8)), (1, 8, 8))
    Traceback (most recent call last):
    ...
    wobbledetect._exceptions.InputShapeError: X has shape (1, 8, 8), the shape of one input; ...
    """
    check_floating(X, name)
    X = np.asarray(X)
    if X.dtype.kind != "f":
        try:  # numbers held as objects, as scikit-learn accepts them
            if X.dtype.kind != "O":
                raise TypeError("not a real number type")
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise InputDtypeError(
                f"{name} has dtype {X.dtype}, which cannot be read as real numbers "
                f"({exc}); pass a float32 array of the model's inputs."
            ) from None
    shape = tuple(int(d) for d in input_shape)
    k = len(shape)
    lead = X.shape[: X.ndim - k] if X.ndim >= k else ()
    forms = f"(n_inputs, {', '.join(map(str, shape))})"
    if max_lead >= 2:
        forms += f" or (n_sets, set_size, {', '.join(map(str, shape))})"
    if tuple(X.shape) == shape:
        raise InputShapeError(
            f"{name} has shape {tuple(X.shape)}, the shape of one input; a batch needs a "
            f"leading batch axis: pass X[None] (shape {(1, *shape)}) for a single input, "
            f"or stack inputs as {forms}."
        )
    if tuple(X.shape[X.ndim - k :]) != shape or not 1 <= len(lead) <= max_lead or X.ndim < k:
        raise InputShapeError(
            f"{name} has shape {tuple(X.shape)}, but the model takes inputs of shape "
            f"{shape}: {name} must be {forms}. Reshape it{hint}."
        )
    _check_values(X, name)
    inputs = np.ascontiguousarray(X.reshape(-1, *shape), dtype=np.float32)
    return inputs, tuple(int(d) for d in lead)


def _check_values(X, name):
    """Refuse NaN, inf, and float64 values that float32 -- the model's dtype -- cannot hold."""
    bad = ~np.isfinite(X)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputValueError(
            f"{name} contains {int(bad.sum())} NaN or inf value(s), the first at index "
            f"{where}; W is only defined for finite inputs. Drop or repair those inputs."
        )
    if X.dtype.itemsize > 4:
        big = np.abs(X) > _FLOAT32_MAX
        if big.any():
            where = tuple(int(i) for i in np.argwhere(big)[0])
            raise InputValueError(
                f"{name} contains {int(big.sum())} value(s) beyond float32's range, the "
                f"first {float(X[where])!r} at index {where}; the model runs in float32, "
                "where they would become inf. Rescale the inputs to the model's range."
            )


def _dtype_of(X):
    """The element type of ``X`` without converting it, or None when it has none yet."""
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and not hasattr(dtypes, "kind"):  # a DataFrame: one per column
        for dtype in dtypes:
            kind = getattr(dtype, "kind", "O")
            if kind != "f":
                try:
                    return np.dtype(dtype)
                except TypeError:  # a pandas extension type, e.g. Int64
                    return np.dtype(np.int64) if kind in "iu" else np.dtype(object)
        return np.dtype(np.float64)
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype):
        return dtype
    try:
        return np.asarray(X).dtype  # lists, torch tensors, ...
    except (ValueError, TypeError, RuntimeError):
        return None  # ragged or odd: the array conversion that follows says why


def check_input_shape(input_shape):
    """The ``input_shape`` parameter as a tuple of positive ints, or None."""
    if input_shape is None:
        return None
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, Integral) and d > 0 for d in shape):
        raise ValueError(
            f"The 'input_shape' parameter must be a non-empty tuple of positive ints, "
            f"e.g. (1, 28, 28); got {input_shape!r}."
        )
    return tuple(int(d) for d in shape)


def check_bool(value, name):
    """``value`` if it is a bool, else a TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


_SHAPE_HINT = ", or pass the model's per-input shape as input_shape=..."


def validate_fit_inputs(estimator, X, input_shape, *, default_shape=None):
    """An estimator's ``fit`` inputs: floats, scikit-learn's checks, then :func:`check_inputs`.

    Sets ``estimator.n_features_in_`` (and ``feature_names_in_`` for a DataFrame) through
    ``validate_data``, like any scikit-learn estimator.

    Parameters
    ----------
    estimator : BaseEstimator
    X : array-like of shape (n_inputs, *input_shape) or (n_sets, set_size, *input_shape)
    input_shape : tuple of int or None
        The checked ``input_shape`` parameter (:func:`check_input_shape`).
    default_shape : tuple of int, optional
        The shape to use when ``input_shape`` is None (e.g. what an ONNX model declares);
        else ``X.shape[1:]``.

    Returns
    -------
    inputs : ndarray of float32, shape (n_inputs, *input_shape)
    input_shape : tuple of int
    """
    from sklearn.utils.validation import validate_data

    check_floating(X)  # before validate_data, which would cast integers to float64
    X = validate_data(estimator, X, allow_nd=True, dtype=[np.float32, np.float64],
                      ensure_all_finite=False)
    if input_shape is None:
        input_shape = default_shape or tuple(X.shape[1:])
    inputs, _ = check_inputs(X, input_shape, hint=_SHAPE_HINT)
    estimator.n_features_in_ = int(np.prod(input_shape))
    return inputs, tuple(input_shape)


def validate_inputs(estimator, X, input_shape):
    """Inputs after ``fit``: :func:`check_inputs` after scikit-learn's own checks.

    Returns
    -------
    inputs : ndarray of float32, shape (n_inputs, *input_shape)
    lead_shape : tuple of int
        ``(n_inputs,)`` or ``(n_sets, set_size)``.
    """
    from sklearn.utils.validation import check_array, validate_data

    check_floating(X)  # before check_array, which would cast integers to float64
    checked = check_array(X, allow_nd=True, dtype=[np.float32, np.float64], ensure_all_finite=False,
                          input_name="X")
    if len(input_shape) == 1 and checked.ndim == 2:
        # Plain tabular inputs: sklearn's own checks, feature names included.
        checked = validate_data(estimator, X, reset=False, dtype=[np.float32, np.float64],
                                ensure_all_finite=False)
    return check_inputs(checked, input_shape)


def check_input_range(input_range):
    """``(low, high)`` as floats, or a ValueError naming the ``input_range`` parameter.

    Examples
    --------
    >>> from wobbledetect._inputs import check_input_range
    >>> check_input_range((0, 255))
    (0.0, 255.0)
    """
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not np.isfinite([low, high]).all() or not low < high:
        raise ValueError(
            "The 'input_range' parameter must be two finite numbers (low, high) with low "
            f"< high, the range of valid input values (e.g. (0.0, 1.0)); got {input_range!r}."
        )
    return low, high
