"""Model-level properties: a layer used twice is one set of parameters, an optimizer serves one model
and never steps a parameter twice, and weights go in and out exactly at the edges of each dtype."""

import os
import tempfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lr as tl
from tests.strategies import FLOAT_DTYPES, arrays

# ----- small strategies of this file -----

OPTIMIZER_NAMES = st.sampled_from(sorted(tl.optim.BY_NAME))


def edge_values(dtype):
    """Values a `dtype` parameter holds exactly: ±max, ±the smallest subnormal, ±the smallest normal,
    ±0.0 (float32's extremes too in a float64 model), or any other finite value of the dtype."""
    kinds = [np.float32] if dtype == np.float32 else [np.float32, np.float64]
    extremes = [0.0, -0.0]
    for kind in kinds:
        info = np.finfo(kind)
        extremes += [sign * float(v) for v in (info.max, info.smallest_subnormal, info.tiny) for sign in (1, -1)]
    width = 8 * np.dtype(dtype).itemsize
    return st.one_of(
        st.sampled_from(extremes), st.floats(width=width, allow_nan=False, allow_infinity=False, allow_subnormal=True)
    )


def beyond(dtype):
    """Values no `dtype` parameter can hold: they are refused, not turned into inf."""
    values = [np.inf, -np.inf, np.nan]
    if dtype == np.float32:
        values += [1e39, -1e39, float(np.finfo(np.float64).max)]
    return st.sampled_from(values)


@st.composite
def reused_layer_models(draw):
    """(model, the layers it runs in order): a Sequential over a pool of 1-3 Linear(2, 2) layers, each
    place drawn from the pool (repeats common), now and then partly nested in a second Sequential,
    and now and then two layers sharing one weight tensor."""
    pool = [tl.nn.Linear(2, 2, bias=draw(st.booleans()), seed=i) for i in range(draw(st.integers(1, 3)))]
    if len(pool) > 1 and draw(st.booleans()):
        pool[1].weight = pool[0].weight
    run = [pool[i] for i in draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=6))]
    layers = list(run)
    if len(layers) > 1 and draw(st.booleans()):
        cut = draw(st.integers(1, len(layers) - 1))
        layers = [tl.nn.Sequential(layers[:cut]), *layers[cut:]]
    return tl.nn.Sequential(layers), run


@st.composite
def small_models(draw, dtype=np.float64):
    """A Sequential of one or two Linear layers, with or without biases."""
    n_in, hidden, n_out = (draw(st.integers(1, 3)) for _ in range(3))
    if draw(st.booleans()):
        layers = [tl.nn.Linear(n_in, n_out, bias=draw(st.booleans()), dtype=dtype)]
    else:
        layers = [
            tl.nn.Linear(n_in, hidden, dtype=dtype),
            tl.nn.Linear(hidden, n_out, bias=draw(st.booleans()), dtype=dtype),
        ]
    return tl.nn.Sequential(layers)


def _bits(array, dtype):
    """The bit patterns of `array` in `dtype`: -0.0 differs from 0.0, and NaN from nothing."""
    array = np.asarray(array, dtype=dtype)
    return array.view(np.uint32 if array.dtype == np.float32 else np.uint64)


def _same_bits(a, b, dtype):
    return all(np.array_equal(_bits(u, dtype), _bits(v, dtype)) for u, v in zip(a, b, strict=True))


# ----- a layer used twice -----


def _sgd_step_by_hand(X, Y, W, b, lr, l2, bias):
    """One gradient-descent step on mean((f(f(X)) - Y)²) + l2·ΣW², f(Z) = Z W + b, in NumPy.

    W and b are one parameter each, used twice: their gradient is the sum over both uses (the
    chain rule), and the step is taken once.
    """
    H = X @ W + b
    P = H @ W + b
    grad_P = 2 * (P - Y) / P.size
    grad_H = grad_P @ W.T  # back through the second use
    grad_W = H.T @ grad_P + X.T @ grad_H + 2 * l2 * W  # the penalty counts W once
    grad_b = grad_P.sum(axis=0) + grad_H.sum(axis=0)
    return W - lr * grad_W, (b - lr * grad_b) if bias else b


@given(
    d=st.integers(1, 3),
    n=st.integers(1, 5),
    bias=st.booleans(),
    epochs=st.integers(1, 3),
    lr=st.sampled_from([0.01, 0.05, 0.1]),
    l2=st.sampled_from([0.0, 0.01, 0.5]),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_a_layer_used_twice_trains_like_one_shared_parameter_by_hand(d, n, bias, epochs, lr, l2, seed, data):
    X, Y = data.draw(arrays((n, d))), data.draw(arrays((n, d)))
    shared = tl.nn.Linear(d, d, bias=bias, seed=seed, dtype=np.float64)
    W, b = shared.weight.data.copy(), shared.bias.data.copy() if bias else np.zeros(d)
    model = tl.nn.Sequential([shared, shared])
    model.compile(optimizer=tl.optim.SGD(lr=lr), l2=l2)
    model.fit(X, Y, epochs=epochs, batch_size=n, shuffle=False, verbose=0)  # one full-batch step per epoch
    for _ in range(epochs):
        W, b = _sgd_step_by_hand(X, Y, W, b, lr, l2, bias)
    np.testing.assert_allclose(shared.weight.data, W, rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(shared.bias.data, b, rtol=1e-10, atol=1e-12)


@given(reused_layer_models())
def test_parameters_never_repeat_and_keep_the_order_of_first_use(model_and_run):
    model, run = model_and_run
    every_use = [p for layer in run for p in (layer.weight, layer.bias) if p is not None]
    first_uses = []
    for p in every_use:
        if not any(p is q for q in first_uses):
            first_uses.append(p)
    params = model.parameters()
    assert [id(p) for p in params] == [id(p) for p in first_uses]
    assert len({id(m) for m in model.modules()}) == len(model.modules())
    names = [name for name, _ in model.named_parameters()]
    assert len(set(names)) == len(names) == len(model.get_weights()) == len(model.state_dict())
    total = sum(p.size for p in params)
    assert f"Total params: {total:,}" in model.summary(print_fn=None)
    tl.optim.SGD(params, lr=0.1)  # accepted: nothing in it twice


# ----- an optimizer: each parameter once, one model -----


@given(
    count=st.integers(1, 4),
    name=OPTIMIZER_NAMES,
    bound_later=st.booleans(),
    data=st.data(),
)
def test_an_optimizer_given_a_parameter_twice_always_refuses(count, name, bound_later, data):
    tensors = [tl.Tensor(np.zeros(2), requires_grad=True) for _ in range(count)]
    # more places than tensors: some tensor comes twice
    picks = data.draw(st.lists(st.integers(0, count - 1), min_size=count + 1, max_size=count + 4))
    given_params = [tensors[i] for i in picks]
    second = next(i for i in range(len(picks)) if picks[i] in picks[:i])
    first = picks.index(picks[second])
    optimizer_class, lr = tl.optim.BY_NAME[name]
    with pytest.raises(ValueError, match=rf"parameter {second} is parameter {first} again"):
        if bound_later:
            optimizer_class(lr=lr).bind(given_params)
        else:
            optimizer_class(given_params, lr=lr)


@given(
    first=small_models(),
    second=small_models(),
    name=OPTIMIZER_NAMES,
    bound_by=st.sampled_from(["compile", "constructor"]),
    borrow_a_layer=st.booleans(),
)
def test_an_optimizer_serving_one_model_always_refuses_a_second(first, second, name, bound_by, borrow_a_layer):
    if borrow_a_layer:  # the second model shares a layer with the first, but has parameters of its own too
        second = tl.nn.Sequential([*first.layers, tl.nn.Linear(first.layers[-1].out_features, 1)])
    optimizer_class, lr = tl.optim.BY_NAME[name]
    optimizer = optimizer_class(first.parameters() if bound_by == "constructor" else None, lr=lr)
    first.compile(optimizer=optimizer)
    with pytest.raises(ValueError, match=r"already bound to other parameters .*fresh instance"):
        second.compile(optimizer=optimizer)
    assert getattr(second, "compiled", None) is None
    assert optimizer.params == first.parameters()
    first.compile(optimizer=optimizer)  # the same model again: allowed
    before = first.get_weights()
    n_in = first.layers[0].in_features
    first.fit(np.ones((4, n_in)), np.full((4, first.layers[-1].out_features), 3.0), epochs=1, verbose=0)
    assert not _same_bits(before, first.get_weights(), np.float64)  # the first model still trains


# ----- weights in and out at the edges of each dtype -----


def _model(dtype):
    return tl.nn.Sequential([tl.nn.Linear(2, 3, seed=0, dtype=dtype), tl.nn.Linear(3, 1, seed=1, dtype=dtype)])


@st.composite
def edge_weights(draw, model, dtype):
    """Arrays for every parameter of `model`, values from `edge_values(dtype)`, given as float64 or as `dtype`."""
    given_as = draw(st.sampled_from([dtype, np.float64]))
    elements = edge_values(dtype)
    return [draw(hnp.arrays(given_as, p.shape, elements=elements)) for p in model.parameters()]


@given(dtype=FLOAT_DTYPES, data=st.data())
def test_weights_at_the_edges_of_the_dtype_round_trip_exactly(dtype, data):
    model = _model(dtype)
    weights = data.draw(edge_weights(model, dtype))
    model.set_weights(weights)
    assert _same_bits(model.get_weights(), weights, dtype)  # -0.0 stays -0.0, subnormals stay
    assert all(w.dtype == dtype for w in model.get_weights())
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.npz")
        model.save_weights(path)
        other = _model(dtype)
        other.load_weights(path)
    assert _same_bits(other.get_weights(), weights, dtype)


@given(dtype=FLOAT_DTYPES, data=st.data())
def test_values_beyond_the_dtype_are_refused_and_change_nothing(dtype, data):
    model = _model(dtype)
    weights = data.draw(edge_weights(model, dtype))
    weights = [w.astype(np.float64) for w in weights]
    index = data.draw(st.integers(0, len(weights) - 1))
    place = data.draw(st.integers(0, weights[index].size - 1))
    weights[index].flat[place] = data.draw(beyond(dtype))
    problem = rf"\(shape .*\) has (non-finite values|values beyond {np.dtype(dtype)}): the first is \S+ at index"
    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"set_weights: weight {index} {problem}"):
        model.set_weights(weights)
    assert _same_bits(model.get_weights(), before, dtype)
    names = [name for name, _ in model.named_parameters()]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.npz")
        np.savez(path, **dict(zip(names, weights, strict=True)))
        with pytest.raises(ValueError, match=rf"member '{names[index]}' {problem}"):
            model.load_weights(path)
    assert _same_bits(model.get_weights(), before, dtype)
