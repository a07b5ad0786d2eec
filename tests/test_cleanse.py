"""Neural Cleanse: the optimisation, the anomaly index, and the demo's planted backdoor."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from wobbledetect import NeuralCleanse, NeuralCleanseWarning
from wobbledetect._cleanse import anomaly_index

#: Cheaper than the defaults (31 batches per step), same algorithm; see test_demo_net.
FAST = dict(batches_per_step=8, random_state=0)


def test_anomaly_index_is_the_papers_mad_rule():
    norms = np.array([2.0, 30.0, 31.0, 29.0, 33.0, 30.0])
    mad = 1.4826 * np.median(np.abs(norms - 30.0))
    np.testing.assert_allclose(anomaly_index(norms), np.abs(norms - 30.0) / mad)
    assert np.isnan(anomaly_index([1.0, 2.0])).all()          # too few classes
    assert np.isnan(anomaly_index([5.0, 5.0, 5.0, 7.0])).all()  # MAD 0: no spread


@pytest.fixture(scope="module")
def fitted(skorch_net, image_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuralCleanseWarning)
        return NeuralCleanse(skorch_net, max_steps=30, **FAST).fit(image_data[0][:128])


def test_fitted_attributes_have_the_documented_shapes_and_ranges(fitted, skorch_net, image_data):
    nc = fitted
    assert nc.n_classes_ == 3 and nc.classes_.tolist() == [0, 1, 2] and nc.input_shape_ == (1, 8, 8)
    assert nc.masks_.shape == (3, 8, 8) and nc.patterns_.shape == (3, 1, 8, 8)
    assert nc.masks_.min() >= 0 and nc.masks_.max() <= 1
    assert nc.patterns_.min() >= 0 and nc.patterns_.max() <= 1
    np.testing.assert_allclose(nc.mask_norms_, nc.masks_.reshape(3, -1).sum(1), rtol=1e-6)
    assert ((nc.n_steps_ >= 1) & (nc.n_steps_ <= 30)).all()
    # attack_success_ is measured again on X with the kept candidate
    for k in range(3):
        stamped = nc.apply(image_data[0][:128], target=k)
        predicted = skorch_net.predict(stamped)
        assert nc.attack_success_[k] == pytest.approx(np.mean(predicted == k))
    assert nc.outputs_ == "logits"


def test_apply_stamps_mask_and_pattern_and_keeps_the_shape(fitted, image_data):
    X = image_data[0][:6]
    stamped = fitted.apply(X, target=2)
    m, p = fitted.masks_[2], fitted.patterns_[2]
    np.testing.assert_allclose(stamped, (1 - m) * X + m * p, rtol=1e-6, atol=1e-7)
    sets = X.reshape(2, 3, 1, 8, 8)
    assert fitted.apply(sets, target=2).shape == sets.shape
    for bad in (3, -1, 1.0, True, "0"):
        with pytest.raises(ValueError, match=r"'target' parameter must be one of the classes searched, \[0, 1, 2\]"):
            fitted.apply(X, target=bad)


@pytest.mark.filterwarnings("ignore::wobbledetect.NeuralCleanseWarning")
def test_the_same_seed_gives_the_same_candidates_and_onnx_the_same_as_torch(skorch_net, onnx_proto, image_data):
    X = image_data[0][:64]
    runs = [NeuralCleanse(model, max_steps=4, classes=[1], **FAST).fit(X)
            for model in (skorch_net, skorch_net, onnx_proto)]
    np.testing.assert_array_equal(runs[0].masks_, runs[1].masks_)
    np.testing.assert_allclose(runs[0].masks_, runs[2].masks_, atol=1e-4)
    other = NeuralCleanse(skorch_net, max_steps=4, classes=[1], batches_per_step=8, random_state=1).fit(X)
    assert not np.array_equal(runs[0].masks_, other.masks_)


def test_too_few_classes_give_nan_and_a_warning(skorch_net, image_data):
    with pytest.warns(NeuralCleanseWarning, match="anomaly index is undefined: 2 class"):
        nc = NeuralCleanse(skorch_net, max_steps=2, classes=[0, 2], **FAST).fit(image_data[0][:64])
    assert np.isnan(nc.anomaly_index_).all() and np.isnan(nc.model_anomaly_index_)
    assert nc.flagged_classes_.size == 0


def test_a_class_never_reaching_the_threshold_is_named_in_a_warning(skorch_net, image_data):
    with pytest.warns(NeuralCleanseWarning) as caught:
        nc = NeuralCleanse(skorch_net, max_steps=1, classes=[0, 1, 2], attack_success_threshold=1.0,
                           **FAST).fit(image_data[0][:64])
    assert any("no candidate reaching attack success 1.0 for class(es) [0, 1, 2] in 1 steps" in str(w.message)
               for w in caught)
    assert not nc.reached_threshold_.any()
    # kept for surfaces that do not see Python warnings (the service): the same ones
    assert [str(w) for w in nc.warnings_] == [str(w.message) for w in caught
                                              if issubclass(w.category, NeuralCleanseWarning)]


def test_the_callback_sees_every_step_and_every_class_and_can_stop_the_fit(skorch_net, image_data):
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuralCleanseWarning)
        nc = NeuralCleanse(skorch_net, max_steps=3, classes=[0, 1, 2], **FAST).fit(
            image_data[0][:64], callback=seen.append)
    assert {p.stage for p in seen} == {"cleanse"} and {p.total for p in seen} == {3}
    # one report per step with the classes finished so far, one per finished class
    for k in range(3):
        assert sum(p.done == k for p in seen) == nc.n_steps_[k] + (k > 0)
    assert seen[-1].done == 3

    class Stop(Exception):
        pass

    def stop_in_class_1(progress):
        if progress.done == 1:
            raise Stop

    with pytest.raises(Stop):
        NeuralCleanse(skorch_net, max_steps=3, **FAST).fit(image_data[0][:64], callback=stop_in_class_1)
    with pytest.raises(TypeError, match="'callback' parameter of fit must be None or a callable"):
        NeuralCleanse(skorch_net, max_steps=3, **FAST).fit(image_data[0][:64], callback=3)


@pytest.mark.parametrize("params, message", [
    (dict(input_range=(1, 0)), "'input_range' parameter must be two finite numbers"),
    (dict(input_range=("a", "b")), "'input_range' parameter must be two finite numbers"),
    (dict(classes=[0, 3]), r"'classes' parameter must list distinct class indices from 0 to 2"),
    (dict(classes=[1, 1]), r"'classes' parameter must list distinct class indices"),
    (dict(init_cost=0), "'init_cost' parameter of NeuralCleanse must be a float in the range"),
    (dict(max_steps=0), "'max_steps' parameter of NeuralCleanse must be an int in the range"),
])
def test_bad_parameters_are_refused_by_name(skorch_net, image_data, params, message):
    with pytest.raises(ValueError, match=message):
        NeuralCleanse(skorch_net, **params).fit(image_data[0][:8])


def test_integer_inputs_and_callables_are_refused(skorch_net, image_data):
    with pytest.raises(ValueError, match="X has dtype uint8, not floating point"):
        NeuralCleanse(skorch_net).fit((image_data[0][:8] * 255).astype(np.uint8))
    with pytest.raises(TypeError, match="plain callable, which has no gradients"):
        NeuralCleanse(skorch_net.predict_proba).fit(image_data[0][:8])


def test_probability_outputs_are_recognised(image_data):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3), torch.nn.Softmax(dim=1))
    nc = NeuralCleanse(net, max_steps=2, classes=[0], **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuralCleanseWarning)
        nc.fit(image_data[0][:32])
    assert nc.outputs_ == "probabilities"


def test_clone_keeps_the_model_and_pickle_round_trips(fitted, skorch_net, image_data):
    twin = clone(fitted)
    assert twin.model is skorch_net and not hasattr(twin, "masks_")
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.apply(image_data[0][:3], target=0),
                                  fitted.apply(image_data[0][:3], target=0))


@pytest.fixture(scope="module")
def demo_nets():
    """The demo's digits net (T1, ``square`` -> class 0; ``prepare_demo``'s training) and
    the same training on the clean data."""
    from wobbledetect.lab import DigitsCNN, load_digits_images, make_classifier, poison

    X, y = load_digits_images()
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    poisoned = poison(X_train, y_train, "square", "T1", target=0, random_state=np.random.RandomState(0))
    nets = {}
    for name, (Xf, yf) in {"backdoored": (poisoned.X, poisoned.y), "clean": (X_train, y_train)}.items():
        nets[name] = make_classifier(DigitsCNN, max_epochs=30, lr=2e-3, batch_size=64, seed=0,
                                     verbose=0).fit(Xf, yf)
    return nets, X_test[:256]


@pytest.mark.slow
def test_demo_net(demo_nets):
    """NC names the planted target of the demo net; on the clean net it does not name class 0.

    Not asserted, because it is a limit of NC rather than a property of the code: with
    the default settings NC's MAD rule also flagged classes 3 and 9 of the *clean* digits
    net (anomaly index 2.5 and 2.4 with the defaults, NC seed 0; also in 3 of the 4 other
    settings tried while writing it): on 8x8
    digits every class is reachable with a mask of 8-13 pixels, the clean norms cluster
    tightly and small deviations pass the threshold. Model screening (W on the
    candidates beside the index) is what has to tell the two nets apart.
    """
    nets, X = demo_nets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NeuralCleanseWarning)
        found = {name: NeuralCleanse(net, **FAST).fit(X) for name, net in nets.items()}
    backdoored, clean = found["backdoored"], found["clean"]
    assert backdoored.flagged_classes_.tolist() == [0]
    assert int(np.argmin(backdoored.mask_norms_)) == 0
    assert backdoored.mask_norms_[0] < 0.8 * np.sort(backdoored.mask_norms_)[1]
    assert backdoored.attack_success_[0] >= 0.99
    assert 0 not in clean.flagged_classes_
    assert clean.mask_norms_[0] > 1.2 * backdoored.mask_norms_[0]
    assert backdoored.model_anomaly_index_ > 2 and backdoored.model_anomaly_index_ > clean.model_anomaly_index_
