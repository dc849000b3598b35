"""Module bookkeeping, Linear (layout, init, fused backward), Sequential, weights on disk."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_lr as tl
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
