"""The model store: content addressing, atomic commits, checks, and what a crash leaves."""

from __future__ import annotations

import hashlib
import os
import stat

import grpc
import pytest

from wobbledetect_service.errors import ServiceError
from wobbledetect_service.store import ModelStore, inspect_onnx

from .conftest import tiny_onnx

LIMIT = 1 << 20


def _put(store, data, chunk=100):
    with store.upload() as upload:
        for start in range(0, len(data), chunk):
            upload.write(data[start : start + chunk])
        return upload.commit()


def test_an_upload_lands_under_its_sha256_and_nothing_else_remains(tmp_path, tiny_model):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    info, created = _put(store, tiny_model)
    model_id = hashlib.sha256(tiny_model).hexdigest()
    assert created and info.model_id == model_id
    assert (info.input_shape, info.n_classes, info.size_bytes) == ((1, 2, 2), 3, len(tiny_model))
    path = tmp_path / "models" / f"{model_id}.onnx"
    assert path.read_bytes() == tiny_model
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # private to the service's user
    assert stat.S_IMODE((tmp_path / "models").stat().st_mode) == 0o700
    assert list((tmp_path / "tmp").iterdir()) == []
    again, created_again = _put(store, tiny_model, chunk=7)
    assert not created_again and again == info
    assert store.read(model_id) == (info, tiny_model)


def test_the_store_survives_a_restart(tmp_path):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    infos = [_put(store, tiny_onnx(seed=s))[0] for s in range(3)]
    store.delete(infos[1].model_id)
    reopened = ModelStore(tmp_path, max_model_bytes=LIMIT)
    assert reopened.list() == sorted([infos[0], infos[2]], key=lambda i: i.model_id)


def _code(call):
    with pytest.raises(ServiceError) as error:
        call()
    return error.value.code, error.value.message


def test_unknown_malformed_and_deleted_ids(tmp_path, tiny_model):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    model_id = _put(store, tiny_model)[0].model_id
    assert _code(lambda: store.get("../models/" + model_id))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: store.get(model_id.upper()))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: store.get("f" * 64))[0] == grpc.StatusCode.NOT_FOUND
    store.delete(model_id)
    assert _code(lambda: store.get(model_id))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: store.delete(model_id))[0] == grpc.StatusCode.NOT_FOUND
    assert store.list() == []


def test_abandoned_uploads_are_removed_at_open_but_live_ones_kept(tmp_path, tiny_model):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    dead = tmp_path / "tmp" / "killed-mid-upload.part"
    dead.write_bytes(tiny_model[:50])  # what a SIGKILLed server leaves: no lock holder
    with store.upload() as live:  # another server sharing the folder, mid-upload
        live.write(tiny_model[:10])
        reopened = ModelStore(tmp_path, max_model_bytes=LIMIT)
        assert reopened.removed_partial == 1
        assert list((tmp_path / "tmp").iterdir()) == [live.path]
        live.write(tiny_model[10:])
        info, created = live.commit()
    assert created and reopened.get(info.model_id).model_id == info.model_id
    assert list((tmp_path / "tmp").iterdir()) == []


def test_files_that_do_not_match_their_name_are_quarantined(tmp_path, tiny_model):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    model_id = _put(store, tiny_model)[0].model_id
    path = tmp_path / "models" / f"{model_id}.onnx"
    path.write_bytes(tiny_onnx(seed=7))  # bit rot, or someone editing the store by hand
    (tmp_path / "models" / "notes.txt").write_text("not a model")
    reopened = ModelStore(tmp_path, max_model_bytes=LIMIT)
    assert reopened.list() == []
    assert (tmp_path / "quarantine" / f"{model_id}.onnx").exists()
    assert (tmp_path / "models" / "notes.txt").exists()  # foreign files are left alone


def test_a_model_copied_into_the_store_is_checked_at_first_sight(tmp_path):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    data = tiny_onnx(seed=3)
    model_id = hashlib.sha256(data).hexdigest()
    (tmp_path / "models" / f"{model_id}.onnx").write_bytes(data)
    assert [i.model_id for i in store.list()] == [model_id]


def test_size_limit_and_failed_checks_leave_nothing(tmp_path, tiny_model):
    store = ModelStore(tmp_path, max_model_bytes=len(tiny_model) - 1)
    code, message = _code(lambda: _put(store, tiny_model))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_model_bytes" in message
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    code, message = _code(lambda: _put(store, b"\x08\x07" + bytes(300)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, message = _code(lambda: _put(store, b""))
    assert "empty" in message
    assert store.list() == [] and list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.parametrize("options, words", [
    (dict(input_shape=("h", 2, 2)), "fixed per-input shape"),
    (dict(batch=1, input_shape=()), "fixed per-input shape"),
    (dict(elem_type=6), "element type INT32"),
    (dict(two_inputs=True), "2 inputs"),
    (dict(n_classes=1), "at least 2 classes"),
    (dict(external=True), "external data"),
])
def test_models_the_service_cannot_screen_are_refused_with_the_reason(options, words):
    code, message = _code(lambda: inspect_onnx(tiny_onnx(**options)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and words in message


def test_external_data_is_refused_without_touching_the_path_it_names(tmp_path):
    import onnx

    model = onnx.load_model_from_string(tiny_onnx(external=True))
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = os.path.abspath(__file__)  # a file that exists on the server
    code, message = _code(lambda: inspect_onnx(model.SerializeToString()))
    assert "external data" in message and __file__ not in message


def test_a_fixed_batch_dimension_is_accepted(tmp_path):
    assert inspect_onnx(tiny_onnx(batch=1)) == ((1, 2, 2), 3)
