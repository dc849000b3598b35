"""Module bookkeeping, Linear (layout, init, fused backward), Sequential, weights on disk."""

import os
import re
import stat
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.messages import message_of
from tests.strategies import arrays


def test_linear_uses_keras_layout_and_zero_bias():
    layer = tl.nn.Linear(3, 2, seed=0)
    assert layer.weight.shape == (3, 2) and layer.bias.shape == (2,)
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.bias.data, 0.0)
    assert layer(np.ones((5, 3))).shape == (5, 2)


def test_linear_weight_is_glorot_uniform():
    layer = tl.nn.Linear(40, 60, seed=1, dtype=np.float64)
    limit = np.sqrt(6 / (40 + 60))
    assert np.all(np.abs(layer.weight.data) <= limit)
    # U(-a, a) has variance a²/3; 2400 draws pin it within a few percent
    assert np.var(layer.weight.data) == pytest.approx(limit**2 / 3, rel=0.1)
    assert layer.weight.dtype == np.float64


def test_linear_seed_is_reproducible():
    a, b, c = tl.nn.Linear(4, 3, seed=7), tl.nn.Linear(4, 3, seed=7), tl.nn.Linear(4, 3, seed=8)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


@given(
    data=st.data(),
    batch=st.sampled_from([(), (1,), (5,), (2, 3)]),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 3)),
    bias=st.booleans(),
)
def test_linear_gradient_passes_gradcheck(data, batch, sizes, bias):
    n_in, n_out = sizes
    layer = tl.nn.Linear(n_in, n_out, bias=bias, seed=0, dtype=np.float64)
    x = tl.Tensor(data.draw(arrays((*batch, n_in))), requires_grad=True)
    np.testing.assert_allclose(layer(x).data, x.data @ layer.weight.data + (layer.bias.data if bias else 0))

    def forward(x, weight, *bias):  # gradcheck hands in float64 copies of the parameters
        layer.weight, layer.bias = weight, (bias[0] if bias else None)
        return layer(x)

    assert tl.gradcheck(forward, x, *layer.parameters())


def test_linear_refuses_the_wrong_feature_count():
    with pytest.raises(ValueError, match=r"input has shape \(10,\); its last axis must hold 1 features.*\(n, 1\)"):
        tl.nn.Linear(1, 1)(np.zeros(10))
    with pytest.raises(ValueError, match=r"shape \(4, 2\).*3 features"):
        tl.nn.Linear(3, 1)(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="positive integer"):
        tl.nn.Linear(0, 1)


def test_parameters_are_in_registration_order():
    first, second = tl.nn.Linear(3, 2, seed=0), tl.nn.Linear(2, 1, seed=1)
    model = tl.nn.Sequential([first, second])
    assert model.parameters() == [first.weight, first.bias, second.weight, second.bias]
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert tl.nn.Linear(2, 2, bias=False).parameters()[0].shape == (2, 2)
    assert len(tl.nn.Sequential(first, second).parameters()) == 4


def test_sequential_applies_layers_in_order():
    first, second = tl.nn.Linear(3, 2, seed=0), tl.nn.Linear(2, 1, seed=1)
    x = np.arange(6.0).reshape(2, 3)
    expected = (x @ first.weight.data + first.bias.data) @ second.weight.data + second.bias.data
    np.testing.assert_allclose(tl.nn.Sequential([first, second])(x).data, expected, rtol=1e-6)
    with pytest.raises(TypeError, match="layer 1"):
        tl.nn.Sequential([first, "relu"])


def test_zero_grad_clears_every_parameter():
    model = tl.nn.Sequential([tl.nn.Linear(2, 1)])
    tl.losses.mse(model(np.ones((3, 2))), np.zeros(3)).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_get_weights_are_copies_and_set_weights_writes_in_place():
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(2, 1), (1,)]
    weights[0][...] = 5.0
    assert not np.any(model.layers[0].weight.data == 5.0)
    array = model.layers[0].weight.data
    model.set_weights([np.full((2, 1), 2.0), np.array([1.0])])
    assert model.layers[0].weight.data is array
    np.testing.assert_array_equal(array, 2.0)


def test_set_weights_checks_everything_before_changing_anything():
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"weight 1 must have shape \(1,\), got \(2,\)"):
        model.set_weights([np.zeros((2, 1)), np.zeros(2)])
    with pytest.raises(ValueError, match="has 2 weight arrays, got 1"):
        model.set_weights([np.zeros((2, 1))])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_state_dict_round_trip():
    model = tl.nn.Sequential([tl.nn.Linear(2, 3, seed=0), tl.nn.Linear(3, 1, seed=1)])
    other = tl.nn.Sequential([tl.nn.Linear(2, 3, seed=5), tl.nn.Linear(3, 1, seed=6)])
    other.load_state_dict(model.state_dict())
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_weights_round_trip(tmp_path):
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    path = tmp_path / "weights"  # no suffix: the file is written at exactly this path
    model.save_weights(path)
    assert path.exists() and list(tmp_path.iterdir()) == [path]
    other = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=9)])
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_loading_weights_of_another_model_fails_clearly_and_changes_nothing(tmp_path):
    path = tmp_path / "small.npz"
    tl.nn.Sequential([tl.nn.Linear(2, 1)]).save_weights(path)
    wider = tl.nn.Sequential([tl.nn.Linear(3, 1, seed=0)])
    before = wider.get_weights()
    with pytest.raises(ValueError, match=r"0.weight of shape \(2, 1\).*shape \(3, 1\)"):
        wider.load_weights(path)
    deeper = tl.nn.Sequential([tl.nn.Linear(2, 2), tl.nn.Linear(2, 1)])
    with pytest.raises(ValueError, match="different model"):
        deeper.load_weights(path)
    for a, b in zip(before, wider.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_never_unpickles_and_reports_corruption(tmp_path):
    model = tl.nn.Sequential([tl.nn.Linear(1, 1)])
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"0.weight": np.array([{"evil": 1}], dtype=object), "0.bias": np.zeros(1)})
    with pytest.raises(ValueError, match="cannot read"):
        model.load_weights(pickled)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.raises(ValueError, match="truncated or corrupted"):
        model.load_weights(garbage)


def test_modules_lists_every_module_in_registration_order():
    first, second = tl.nn.Linear(3, 2), tl.nn.Linear(2, 1)
    model = tl.nn.Sequential([first, second])
    assert model.modules() == [model, first, second]
    assert first.modules() == [first]


def test_a_layer_used_twice_lists_its_parameters_once():
    shared = tl.nn.Linear(2, 2, seed=0)
    model = tl.nn.Sequential([shared, shared])
    assert model.parameters() == [shared.weight, shared.bias]
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert model.modules() == [model, shared]
    assert list(model.state_dict()) == ["0.weight", "0.bias"]


def test_a_tensor_shared_by_two_layers_is_listed_once_at_its_first_place():
    first, second = tl.nn.Linear(2, 2, seed=0), tl.nn.Linear(2, 2, seed=1)
    second.weight = first.weight
    model = tl.nn.Sequential([first, second])
    assert model.parameters() == [first.weight, first.bias, second.bias]
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        (
            [np.ones((2, 1)), np.array([1e300])],
            r"weight 1 \(shape \(1,\)\) has values beyond float32: the first is 1e\+300 at index",
        ),
        ([np.full((2, 1), -1e39), np.zeros(1)], r"weight 0 \(shape \(2, 1\)\) has values beyond float32"),
        ([np.ones((2, 1)), np.array([np.nan])], r"weight 1 \(shape \(1,\)\) has non-finite values: the first is nan"),
        ([np.ones((2, 1)), np.array([1 + 2j])], r"weight 1 must hold real numbers, got an array of dtype complex128"),
        ([np.array([["a"], ["b"]]), np.zeros(1)], r"weight 0 must hold real numbers, got an array of dtype <U1"),
        ([np.ones((2, 1)), np.array([None])], r"weight 1 must hold real numbers, got an array of dtype object"),
        ([np.ones((2, 1)), [[1.0], 2.0]], r"weight 1 is not a rectangular array"),
    ],
)
def test_set_weights_refuses_what_the_parameters_cannot_hold_and_changes_nothing(weights, words):
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    before = model.get_weights()
    with pytest.raises(ValueError, match=words):
        model.set_weights(weights)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_casts_to_each_parameters_dtype():
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, dtype=np.float64)])
    model.set_weights([np.full((2, 1), 1e300), np.array([-1e-320])])  # fine in float64
    assert model.get_weights()[0][0, 0] == 1e300 and model.get_weights()[1][0] == -1e-320
    small = tl.nn.Sequential([tl.nn.Linear(2, 1)])
    small.set_weights([np.full((2, 1), 3), np.array([True])])  # integers and bools are numbers
    assert small.get_weights()[0].dtype == np.float32


# ===== the fine print a user sees: exact messages, reprs, state (was test_model_details.py) =====


# ----- modules -----


def test_a_module_without_forward_says_so_by_name():
    class Empty(tl.nn.Module):
        pass

    with pytest.raises(NotImplementedError) as error:
        Empty()(np.zeros(1))
    assert str(error.value) == "Empty.forward is not written"


def test_load_state_dict_with_other_names_lists_both():
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    with pytest.raises(ValueError) as error:
        model.load_state_dict({"weight": np.zeros((2, 1)), "0.bias": np.zeros(1)})
    assert str(error.value) == "load_state_dict: the model has weights ['0.weight', '0.bias'], got ['0.bias', 'weight']"


def test_summary_goes_to_the_given_print_function_only(capsys):
    model = tl.nn.Sequential([tl.nn.Linear(3, 2, seed=0)])
    printed = []
    text = model.summary(print_fn=printed.append)
    assert printed == [text]
    assert "linear (Linear)" in text
    assert capsys.readouterr().out == ""


def test_linear_reprs_its_sizes_and_whether_it_has_a_bias():
    assert repr(tl.nn.Linear(3, 2)) == "Linear(3, 2, bias=True)"
    assert repr(tl.nn.Linear(1, 4, bias=False)) == "Linear(1, 4, bias=False)"


# ----- weights on disk -----


@pytest.fixture
def recorded_replace(monkeypatch):
    """The (source, destination) of every os.replace, which still happens."""
    calls = []
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        calls.append((os.fspath(src), os.fspath(dst)))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_save_weights_writes_a_hidden_temporary_file_beside_the_target(tmp_path, monkeypatch, recorded_replace):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.chdir(elsewhere)
    tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)]).save_weights(folder / "w.npz")
    [(src, dst)] = recorded_replace
    assert dst == os.path.realpath(folder / "w.npz")
    assert os.path.dirname(src) == os.path.realpath(folder)
    assert re.fullmatch(r"\.tmp-weights-[0-9a-f]{16}\.npz", os.path.basename(src))
    assert sorted(os.listdir(folder)) == ["w.npz"] and os.listdir(elsewhere) == []


def test_save_weights_never_reuses_an_existing_temporary_name(tmp_path, monkeypatch):
    names = iter(["0" * 16, "1" * 16])
    monkeypatch.setattr(tl.nn.secrets, "token_hex", lambda n: next(names))
    taken = tmp_path / f".tmp-weights-{'0' * 16}.npz"
    taken.write_bytes(b"someone else's file")
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    model.save_weights(tmp_path / "w.npz")
    assert taken.read_bytes() == b"someone else's file"
    assert sorted(os.listdir(tmp_path)) == [taken.name, "w.npz"]
    other = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=1)])
    other.load_weights(tmp_path / "w.npz")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_weights_gives_up_after_100_taken_temporary_names(tmp_path, monkeypatch):
    tries = []

    def token_hex(n):
        tries.append(n)
        return "0" * 16

    monkeypatch.setattr(tl.nn.secrets, "token_hex", token_hex)
    (tmp_path / f".tmp-weights-{'0' * 16}.npz").write_bytes(b"taken")
    with pytest.raises(FileExistsError) as error:
        tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)]).save_weights(tmp_path / "w.npz")
    assert str(error.value) == f"save_weights: could not create a temporary file in {str(tmp_path)!r}"
    assert tries == [8] * 100
    assert not (tmp_path / "w.npz").exists()


def test_a_new_weights_file_gets_the_mode_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)]).save_weights(tmp_path / "w.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "w.npz").st_mode) == 0o644


def _local_headers(path):
    """(member name, compression method, extra field) of each local file header of a zip, in order."""
    data = path.read_bytes()
    found, at = [], 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            at = info.header_offset
            assert data[at : at + 4] == b"PK\x03\x04"
            method, name_length, extra_length = struct.unpack("<H16xHH", data[at + 8 : at + 30])
            name = data[at + 30 : at + 30 + name_length].decode()
            extra = data[at + 30 + name_length : at + 30 + name_length + extra_length]
            found.append((name, method, extra))
    return found


def test_weights_file_members_are_stored_uncompressed_with_zip64_headers_as_np_savez_writes(tmp_path):
    # np.savez writes each member with force_zip64, so a member may grow past 2 GiB while it is written
    path = tmp_path / "w.npz"
    tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)]).save_weights(path)
    headers = _local_headers(path)
    assert [name for name, _, _ in headers] == ["0.weight.npy", "0.bias.npy"]
    for _, method, extra in headers:
        assert method == zipfile.ZIP_STORED
        assert struct.unpack("<H", extra[:2]) == (1,)  # the zip64 extended information field


def test_save_weights_refuses_to_pickle_an_object_parameter_and_writes_nothing(tmp_path):
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    model.layers[0].bias = tl.Tensor(np.array([0.5]), requires_grad=True, dtype=object)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        model.save_weights(tmp_path / "w.npz")
    assert os.listdir(tmp_path) == []


# ----- weights files: what load_weights says -----


def test_load_weights_of_a_different_model_lists_both_sets_of_names(tmp_path):
    path = tmp_path / "w.npz"
    tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)]).save_weights(path)
    deeper = tl.nn.Sequential([tl.nn.Linear(2, 2), tl.nn.Linear(2, 1)])
    assert message_of(ValueError, lambda: deeper.load_weights(path)) == (
        f"load_weights: {str(path)!r} holds weights ['0.bias', '0.weight'] but this model has "
        "['0.weight', '0.bias', '1.weight', '1.bias']; it was saved from a different model"
    )


def _numpy_error(read):
    with pytest.raises(Exception) as error:
        read()
    return str(error.value)


def test_load_weights_of_a_damaged_file_names_it_and_the_cause(tmp_path):
    model = tl.nn.Sequential([tl.nn.Linear(1, 1)])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip file")
    cause = _numpy_error(lambda: np.load(garbage, allow_pickle=False))
    assert message_of(ValueError, lambda: model.load_weights(garbage)) == (
        f"load_weights: cannot read {str(garbage)!r} as a weights file (truncated or corrupted?): {cause}"
    )
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"0.weight": np.array([{"evil": 1}], dtype=object), "0.bias": np.zeros(1)})
    cause = _numpy_error(lambda: np.load(pickled, allow_pickle=False)["0.weight"])
    assert message_of(ValueError, lambda: model.load_weights(pickled)) == (
        f"load_weights: cannot read {str(pickled)!r} as a weights file (truncated or corrupted?): {cause}"
    )


def test_load_weights_of_a_single_array_file_says_it_is_not_an_archive(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(2))
    assert message_of(ValueError, lambda: tl.nn.Linear(1, 1).load_weights(path)) == (
        f"load_weights: {str(path)!r} holds a single array (an .npy file), not the named arrays of an .npz "
        "archive; load the file that model.save or model.save_weights wrote"
    )


def test_load_weights_of_an_archive_with_a_raw_member_names_the_member(tmp_path):
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weight", b"not an array")
        archive.writestr("bias.npy", b"")
    assert message_of(ValueError, lambda: tl.nn.Linear(1, 1).load_weights(path)) == (
        f"load_weights: {str(path)!r} member 'weight' is not an array (.npy); the file was not written by "
        "model.save or save_weights"
    )


# ----- Linear and Sequential -----


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tl.nn.Linear(0, 1), "Linear: in_features must be a positive integer, got 0"),
        (lambda: tl.nn.Linear(2, -1), "Linear: out_features must be a positive integer, got -1"),
        (lambda: tl.nn.Linear(2.5, 1), "Linear: in_features must be a positive integer, got 2.5"),
        (lambda: tl.nn.Linear(True, 1), "Linear: in_features must be a positive integer, got True"),
        (lambda: tl.nn.Linear(2, 2.0), "Linear: out_features must be a positive integer, got 2.0"),
    ],
)
def test_linear_sizes_must_be_positive_integers(make, message):
    assert message_of(ValueError, make) == message


def test_linear_casts_plain_input_to_its_own_dtype():
    layer32 = tl.nn.Linear(3, 2, seed=0)
    assert layer32(np.ones((2, 3), dtype=np.float64)).dtype == np.float32
    layer64 = tl.nn.Linear(3, 2, seed=0, dtype=np.float64)
    assert layer64([[1, 2, 3]]).dtype == np.float64


def test_linear_wrong_feature_count_messages():
    assert message_of(ValueError, lambda: tl.nn.Linear(3, 1)(np.zeros((4, 2)))) == (
        "Linear(3, 1, bias=True): input has shape (4, 2); its last axis must hold 3 features"
    )
    assert message_of(ValueError, lambda: tl.nn.Linear(1, 2, bias=False)(np.zeros(10))) == (
        "Linear(1, 2, bias=False): input has shape (10,); its last axis must hold 1 features (for n samples of one "
        "feature use shape (n, 1))"
    )


def test_output_shape_replaces_only_the_last_axis():
    assert tl.nn.Linear(3, 2).output_shape((None, 5, 3)) == (None, 5, 2)
    assert tl.nn.Linear(3, 2).output_shape((3,)) == (2,)
    model = tl.nn.Sequential([tl.nn.Linear(3, 4), tl.nn.Linear(4, 1)])
    assert model.output_shape((7, 6, 3)) == (7, 6, 1)


def test_sequential_names_the_layer_that_is_not_a_module():
    assert message_of(TypeError, lambda: tl.nn.Sequential([tl.nn.Linear(1, 1), "relu"])) == (
        "Sequential: layer 1 is a str, not a Module"
    )
