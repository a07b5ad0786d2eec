"""The store never serves bytes that do not hash to their id, even when the file is
replaced or corrupted on disk while the server runs."""

from __future__ import annotations

import hashlib
import os

import grpc
import pytest

from wobbledetect.v1 import screening_pb2 as pb
from wobbledetect_service.errors import ServiceError
from wobbledetect_service.store import ModelStore

from .conftest import running_server, screen_request, tiny_onnx

LIMIT = 1 << 20

#: The small screen the tests send.
SCREEN = dict(n_clean=10, n_samples=16, seed=1, data_seed=0)


def _put(store, data):
    with store.upload() as upload:
        upload.write(data)
        return upload.commit()


def _not_found(call):
    with pytest.raises(ServiceError) as error:
        call()
    assert error.value.code == grpc.StatusCode.NOT_FOUND, error.value.message
    return error.value.message


def _replace(path, data):
    """What a person or a script does: write another file and rename it over the model."""
    other = path.with_suffix(".new")
    other.write_bytes(data)
    os.replace(other, path)


def _overwrite_in_place(path, data):
    """Same inode, same size (tiny_onnx of another seed): only the times change."""
    assert len(data) == path.stat().st_size
    with open(path, "r+b") as handle:
        handle.write(data)


@pytest.mark.parametrize("change", [_replace, _overwrite_in_place])
@pytest.mark.parametrize("first_call", ["get", "read", "list"])
def test_a_model_file_changed_on_disk_is_quarantined_not_served(tmp_path, change, first_call):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    original, other = tiny_onnx(seed=0), tiny_onnx(seed=7)
    model_id = _put(store, original)[0].model_id
    assert store.read(model_id)[1] == original  # checked and cached before the change
    path = tmp_path / "models" / f"{model_id}.onnx"
    change(path, other)
    if first_call == "list":
        assert store.list() == []
    else:
        message = _not_found(lambda: getattr(store, first_call)(model_id))
        assert "no longer hashes to that id" in message and "Upload the model again" in message
    assert not path.exists()
    assert (tmp_path / "quarantine" / path.name).read_bytes() == other
    _not_found(lambda: store.read(model_id))
    # Uploading the model again restores it.
    info, created = _put(store, original)
    assert created and store.read(model_id) == (info, original)


def _blind_to_metadata(monkeypatch):
    """Bit rot changes bytes without touching a file's metadata: make every file's stat
    look the same to the store."""
    import wobbledetect_service.store

    monkeypatch.setattr(wobbledetect_service.store, "_stat_key", lambda status: (),
                        raising=False)


def test_read_hashes_the_bytes_it_serves_even_when_the_file_looks_unchanged(
        tmp_path, monkeypatch):
    _blind_to_metadata(monkeypatch)
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    original = tiny_onnx(seed=0)
    info = _put(store, original)[0]
    path = tmp_path / "models" / f"{info.model_id}.onnx"
    _overwrite_in_place(path, tiny_onnx(seed=7))
    assert store.get(info.model_id) == info  # nothing to see from the metadata ...
    _not_found(lambda: store.read(info.model_id))  # ... but the bytes are never served
    assert (tmp_path / "quarantine" / path.name).exists() and not path.exists()


def test_a_duplicate_upload_repairs_a_corrupted_file(tmp_path, monkeypatch):
    _blind_to_metadata(monkeypatch)  # unnoticed bit rot, as above
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    original = tiny_onnx(seed=0)
    info = _put(store, original)[0]
    path = tmp_path / "models" / f"{info.model_id}.onnx"
    _overwrite_in_place(path, tiny_onnx(seed=7))
    again, created = _put(store, original)
    assert created and again.model_id == info.model_id
    assert path.read_bytes() == original


def test_a_file_touched_but_unchanged_is_still_served(tmp_path):
    store = ModelStore(tmp_path, max_model_bytes=LIMIT)
    original = tiny_onnx(seed=0)
    info = _put(store, original)[0]
    path = tmp_path / "models" / f"{info.model_id}.onnx"
    _replace(path, original)  # the same bytes copied over it: a new inode
    assert store.get(info.model_id) == info
    assert store.read(info.model_id) == (info, original)
    assert not (tmp_path / "quarantine").exists()





def test_the_server_answers_not_found_for_a_replaced_model_and_accepts_it_again(tmp_path):
    original, other = tiny_onnx(seed=0), tiny_onnx(seed=7)
    model_id = hashlib.sha256(original).hexdigest()
    with running_server(tmp_path / "store") as server:
        stub = server.stub
        assert stub.UploadModel(iter([pb.UploadModelRequest(chunk=original)])).created
        expected = stub.Screen(screen_request(model_id, **SCREEN))
        _replace(tmp_path / "store" / "models" / f"{model_id}.onnx", other)
        for call in (lambda: stub.Screen(screen_request(model_id, **SCREEN)),
                     lambda: stub.GetModel(pb.GetModelRequest(model_id=model_id))):
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
            assert "Upload the model again" in error.value.details()
        assert stub.ListModels(pb.ListModelsRequest()).models == []
        again = stub.UploadModel(iter([pb.UploadModelRequest(chunk=original)]))
        assert again.created and again.model.model_id == model_id
        assert stub.Screen(screen_request(model_id, **SCREEN)) == expected
