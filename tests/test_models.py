"""The model adapters: skorch, torch, ONNX (path, bytes, proto) and callables."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import onnx
import pytest
import torch
from skorch import NeuralNetClassifier
from sklearn.linear_model import LogisticRegression

from wobbledetect import ModelNotFittedError, WobblinessTransformer, _models
from wobbledetect._models import make_predictor, resolve_device
from wobbledetect.lab import DigitsCNN, to_onnx

#: Share of votes allowed to differ between the torch and ONNX backends for the same
#: noise. Both compute the same float32 graph, but kernels may round differently, which
#: can flip an argmax at an exact near-tie. Measured on the test net: 0 of 150,000.
VOTE_TOLERANCE = 1e-3


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_skorch_torch_and_onnx_give_the_same_votes(skorch_net, onnx_proto, image_data, sigma):
    X = image_data[0][:100]
    votes = {}
    for name, model in [("skorch", skorch_net), ("torch", skorch_net.module_), ("onnx", onnx_proto)]:
        # inference="eager": compare torch's own kernels with onnxruntime's, not the
        # internal ONNX fast path that "auto" would pick for torch models on a CPU.
        wob = WobblinessTransformer(
            model, sigma=sigma, n_samples=250, random_state=0, device="cpu", inference="eager"
        )
        votes[name] = np.rint(wob.fit(X).vote_frequencies(X) * 250).astype(int)
    np.testing.assert_array_equal(votes["skorch"], votes["torch"])  # the very same module
    differing = np.abs(votes["onnx"] - votes["torch"]).sum() / 2
    assert differing <= VOTE_TOLERANCE * votes["torch"].sum()
    # Not a vacuous comparison: the noise does move votes at this sigma.
    assert (votes["torch"].max(axis=1) < 250).sum() >= 5


def test_onnx_from_path_bytes_and_proto(onnx_proto, image_data, tmp_path):
    path = tmp_path / "net.onnx"
    onnx.save(onnx_proto, path)
    X = image_data[0][:20]
    results = []
    for model in (onnx_proto, onnx_proto.SerializeToString(), str(path), path):
        wob = WobblinessTransformer(model, sigma=0.5, n_samples=50, random_state=0).fit(X)
        assert wob.input_shape_ == (1, 8, 8)  # declared by the model
        results.append(wob.transform(X))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_onnx_declared_shape_lets_fit_see_sets(onnx_proto, image_data):
    sets = image_data[0][:12].reshape(3, 4, 1, 8, 8)
    wob = WobblinessTransformer(onnx_proto, n_samples=20, random_state=0).fit(sets)
    assert wob.transform(sets).shape == (3, 4)


def test_onnx_with_fixed_batch_dimension(skorch_net, image_data, tmp_path):
    path = tmp_path / "fixed.onnx"
    module = skorch_net.module_.eval()
    torch.onnx.export(module, (torch.zeros(8, 1, 8, 8),), str(path), input_names=["x"], verbose=False)
    declared = onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_value
    assert declared == 8
    X = image_data[0][:10]
    kwargs = dict(sigma=0.5, n_samples=30, random_state=0, batch_size=50)
    fixed = WobblinessTransformer(str(path), **kwargs).fit(X).transform(X)
    dynamic = WobblinessTransformer(module, **kwargs).fit(X).transform(X)
    np.testing.assert_allclose(fixed, dynamic)


@pytest.fixture
def empty_onnx_cache(monkeypatch):
    cache = OrderedDict()
    monkeypatch.setattr(_models, "_onnx_cache", cache)
    return cache


def test_onnx_runs_on_cpu_without_warnings(onnx_proto, recwarn, empty_onnx_cache):
    predictor = make_predictor(onnx_proto, "cpu")
    assert predictor.session.get_providers() == ["CPUExecutionProvider"]
    assert not [w for w in recwarn if "onnxruntime" in str(w.message).lower()]


def test_sessions_of_in_memory_models_are_reused(onnx_proto, empty_onnx_cache, monkeypatch):
    data = onnx_proto.SerializeToString()
    first = make_predictor(data, "cpu")
    assert make_predictor(bytearray(data), "cpu") is first  # same content, same session
    assert make_predictor(onnx_proto, "cpu") is first
    other = onnx.ModelProto()
    other.CopyFrom(onnx_proto)
    other.doc_string = "another model"
    assert make_predictor(other, "cpu") is not first  # other content, other session
    monkeypatch.setattr(_models, "ONNX_CACHE_SIZE", 2)
    third = onnx.ModelProto()
    third.CopyFrom(onnx_proto)
    third.doc_string = "a third model"
    make_predictor(third, "cpu")
    assert len(empty_onnx_cache) == 2
    assert make_predictor(data, "cpu") is not first  # least recently used: dropped


def test_onnx_sessions_from_a_path_are_not_cached(onnx_proto, tmp_path, empty_onnx_cache):
    path = tmp_path / "net.onnx"
    onnx.save(onnx_proto, path)  # the file may change between two fits
    assert make_predictor(str(path), "cpu") is not make_predictor(str(path), "cpu")
    assert not empty_onnx_cache


def test_broken_onnx_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="'model' parameter could not be loaded by onnxruntime"):
        WobblinessTransformer(b"not an onnx model").fit(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"'model' parameter is the path .*missing.onnx.*not a file"):
        WobblinessTransformer(str(tmp_path / "missing.onnx")).fit(np.zeros((2, 4)))


def test_inference_session_is_refused_with_the_fix(onnx_proto):
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(TypeError, match="cannot be cloned or pickled; pass the ONNX model itself"):
        WobblinessTransformer(session).fit(np.zeros((2, 1, 8, 8)))


def test_unfitted_skorch_net_is_a_clear_error():
    net = NeuralNetClassifier(DigitsCNN, criterion=torch.nn.CrossEntropyLoss)
    with pytest.raises(ModelNotFittedError, match="NeuralNetClassifier that is not initialized; call net.fit"):
        WobblinessTransformer(net).fit(np.zeros((2, 1, 8, 8)))


def test_unfitted_sklearn_callable_is_a_clear_error():
    with pytest.raises(ModelNotFittedError, match="callable whose estimator is not fitted"):
        WobblinessTransformer(LogisticRegression().predict_proba).fit(np.zeros((2, 3)))


def test_callable_returning_torch_tensors_and_lists():
    X = np.array([[0.0], [4.0]], dtype=np.float32)
    as_tensor = WobblinessTransformer(
        lambda b: torch.from_numpy(np.hstack([b, -b])), sigma=1.0, n_samples=200, random_state=0
    ).fit_transform(X)
    as_list = WobblinessTransformer(
        lambda b: np.hstack([b, -b]).tolist(), sigma=1.0, n_samples=200, random_state=0
    ).fit_transform(X)
    np.testing.assert_array_equal(as_tensor, as_list)
    assert as_tensor[0, 0] > 0.5 and as_tensor[1, 0] == 0.0


def test_unknown_model_type():
    with pytest.raises(TypeError, match="'model' parameter must be a fitted skorch net.*got an object of type int"):
        WobblinessTransformer(42).fit(np.zeros((2, 4)))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="'device' parameter must be 'auto'"):
        resolve_device("gpu0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_and_cpu_agree_on_votes_up_to_noise_streams(skorch_net, onnx_proto, image_data):
    # CUDA draws its noise from Philox, the CPU from Mersenne Twister: W differs per input
    # but its distribution does not. Compare means over many inputs.
    X = image_data[0][:200]
    for model in (skorch_net, onnx_proto):
        w = {
            d: WobblinessTransformer(model, sigma=0.5, random_state=0, device=d).fit_transform(X)
            for d in ("cpu", "cuda")
        }
        assert abs(w["cpu"].mean() - w["cuda"].mean()) < 0.05


def test_to_onnx_declares_a_dynamic_batch_and_leaves_the_net_alone(skorch_net):
    module = skorch_net.module_
    module.train()
    proto = to_onnx(skorch_net, (1, 8, 8))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    assert module.training  # exported from a copy: the caller's mode is unchanged
    module.eval()
