"""The differentiable module behind Neural Cleanse and universal perturbations."""

import numpy as np
import onnx
import pytest
import torch

from wobbledetect import ModelConversionError, to_onnx
from wobbledetect._gradients import differentiable_module


def test_skorch_torch_and_onnx_give_the_same_scores_with_gradients(skorch_net, onnx_proto, image_data):
    X = image_data[0][:16]
    expected = skorch_net.module_.eval()(torch.from_numpy(X)).detach()
    for model in (skorch_net, skorch_net.module_, onnx_proto, onnx_proto.SerializeToString()):
        module = differentiable_module(model, "cpu", check_inputs=X[:4])
        assert module is not skorch_net.module_ and not module.training
        assert not any(p.requires_grad for p in module.parameters())
        x = torch.from_numpy(X).requires_grad_(True)
        scores = module(x)
        torch.testing.assert_close(scores.detach(), expected, rtol=1e-4, atol=1e-5)
        scores[:, 0].sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_an_onnx_file_on_disk_converts(tmp_path, onnx_proto, image_data):
    path = tmp_path / "net.onnx"
    onnx.save(onnx_proto, path)
    module = differentiable_module(str(path), "cpu", check_inputs=image_data[0][:4])
    assert module(torch.from_numpy(image_data[0][:3])).shape == (3, 3)


def test_the_exporters_opset_and_allowzero_reshape_are_handled(onnx_proto):
    # torch's exporter writes opset 18+ and Reshape(allowzero=1), both of which
    # onnx2torch refuses as they come; the conversion must not depend on luck here.
    assert max(o.version for o in onnx_proto.opset_import if o.domain in ("", "ai.onnx")) > 17
    assert any(a.name == "allowzero" and a.i == 1 for n in onnx_proto.graph.node
               if n.op_type == "Reshape" for a in n.attribute)
    differentiable_module(onnx_proto, "cpu")


def _custom_op_model():
    node = onnx.helper.make_node("NoSuchOp", ["x"], ["y"], domain="example.custom")
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17),
                                                        onnx.helper.make_opsetid("example.custom", 1)])


def test_a_model_onnx2torch_cannot_convert_is_refused_clearly():
    with pytest.raises(ModelConversionError, match=r"could not be converted to torch by onnx2torch "
                       r"\(NotImplementedError.*NoSuchOp.*pass the torch.nn.Module or skorch net itself"):
        differentiable_module(_custom_op_model(), "cpu")
    with pytest.raises(ModelConversionError, match="could not be read as an ONNX model"):
        differentiable_module(b"not an onnx model", "cpu")
    assert issubclass(ModelConversionError, ValueError)


def test_a_conversion_that_disagrees_with_onnxruntime_is_refused(monkeypatch, onnx_proto, image_data):
    from wobbledetect import _gradients

    monkeypatch.setattr(_gradients, "_convert", lambda proto: torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 3)))
    with pytest.raises(ModelConversionError, match="does not compute what onnxruntime computes on 4 "
                       "check inputs"):
        differentiable_module(onnx_proto, "cpu", check_inputs=image_data[0][:4])


def test_callables_and_other_objects_are_refused(skorch_net):
    with pytest.raises(TypeError, match="plain callable, which has no gradients.*Pass the torch.nn.Module"):
        differentiable_module(skorch_net.predict_proba, "cpu")
    with pytest.raises(TypeError, match="got an object of type int"):
        differentiable_module(3, "cpu")


def test_the_users_module_is_left_untouched():
    net = torch.nn.Linear(4, 2).train()
    module = differentiable_module(net, "cpu")
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert module is not net and not module.training


def test_to_onnx_export_round_trips_through_the_converter():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 6 * 6, 4)).eval()
    x = np.random.RandomState(0).rand(5, 1, 8, 8).astype(np.float32)
    module = differentiable_module(to_onnx(net, (1, 8, 8)), "cpu", check_inputs=x)
    torch.testing.assert_close(module(torch.from_numpy(x)), net(torch.from_numpy(x)).detach(),
                               rtol=1e-4, atol=1e-5)
