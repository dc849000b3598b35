"""Model files: `model.save` / `tl.nn.load_model` (architecture, weights, metadata in one .npz), and
`tl.callbacks.ModelCheckpoint`, which writes them during `fit`."""

import json
import os
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lr as tl
from tests.messages import message_of
from tests.strategies import FLOAT_DTYPES
from tests.test_robustness import CRAFTED, npy_declaring, peak_memory, write_crafted


def same_bits(a, b):
    """Equal arrays, dtype and every bit (-0.0 is not 0.0), in order."""
    return len(a) == len(b) and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a, b)
    )


def members(path):
    """Name → array of an .npz file, read as np.load reads it (never unpickling)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def json_of(array):
    return json.loads(bytes(array).decode())


def text_member(value):
    """A JSON value as the uint8 member a model file holds it in; a str is taken as the text itself."""
    text = value if isinstance(value, str) else json.dumps(value)
    return np.frombuffer(text.encode(), np.uint8)


def write_members(path, arrays):
    """An .npz of these arrays, at exactly `path`, as np.savez writes it."""
    with open(path, "wb") as file:
        np.savez(file, **arrays)


# ----- architectures drawn: Linear, or Sequentials 1 to 3 deep; sizes, bias and dtype per layer -----


@st.composite
def layers(draw, n_in, depth):
    """(a Linear or a Sequential of 1-3 layers, nested while depth > 1, taking n_in features, its output size)."""
    if depth > 1 and draw(st.booleans()):
        children = []
        for _ in range(draw(st.integers(1, 3))):
            child, n_in = draw(layers(n_in, depth - 1))
            children.append(child)
        return tl.nn.Sequential(children), n_in
    n_out = draw(st.integers(1, 4))
    return tl.nn.Linear(n_in, n_out, bias=draw(st.booleans()), dtype=draw(FLOAT_DTYPES)), n_out


@st.composite
def models(draw):
    """A model with weights drawn anywhere in each parameter's dtype (zeros of both signs, subnormals)."""
    model, _ = draw(layers(draw(st.integers(1, 4)), depth=3))
    weights = [
        draw(
            hnp.arrays(
                p.dtype, p.shape, elements=st.floats(width=8 * p.dtype.itemsize, allow_nan=False, allow_infinity=False)
            )
        )
        for p in model.parameters()
    ]
    model.set_weights(weights)
    return model


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(model=models(), metadata=st.dictionaries(st.text(), json_values, max_size=4))
def test_a_saved_model_comes_back_the_same_layers_weights_to_the_bit_dtypes_and_metadata(
    tmp_path_factory, model, metadata
):
    path = tmp_path_factory.mktemp("save") / "model"
    model.save(path, metadata=metadata)
    loaded = tl.nn.load_model(path)
    assert type(loaded) is type(model) and repr(loaded) == repr(model)  # sizes, bias, nesting
    assert [p.dtype for p in loaded.parameters()] == [p.dtype for p in model.parameters()]
    assert same_bits(loaded.get_weights(), model.get_weights())
    assert loaded.metadata == metadata
    x = np.linspace(-1, 1, 3 * model.parameters()[0].shape[0]).reshape(3, -1)
    with np.errstate(all="ignore"):  # (drawn weights near the dtype's limits overflow, alike on both sides)
        assert same_bits([loaded(x).data], [model(x).data])
    assert os.listdir(path.parent) == ["model"]  # at exactly that path, no temporary file left


@given(model=models())
def test_load_weights_reads_the_weights_of_a_model_file(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("save") / "model.npz"
    model.save(path)
    twin = tl.nn.load_model(path)  # the same layers, with other weights
    twin.set_weights([np.zeros_like(w) for w in twin.get_weights()])
    twin.load_weights(path)
    assert same_bits(twin.get_weights(), model.get_weights())


def test_the_file_holds_the_documented_json_and_the_weights_named_as_state_dict_names_them(tmp_path):
    inner = tl.nn.Linear(3, 1, bias=False, dtype=np.float64)
    model = tl.nn.Sequential([tl.nn.Linear(2, 3, seed=0), tl.nn.Sequential([inner])])
    model.save(tmp_path / "m.npz", metadata={"units": "m²", "sizes": (2, 3)})
    arrays = members(tmp_path / "m.npz")
    assert list(arrays) == ["architecture", "metadata", "0.weight", "0.bias", "1.0.weight"]
    assert json_of(arrays["architecture"]) == {
        "format": "tinygrad_lr.model",
        "version": 1,
        "model": {
            "class": "Sequential",
            "layers": [
                {"class": "Linear", "in_features": 2, "out_features": 3, "bias": True, "dtype": "float32"},
                {
                    "class": "Sequential",
                    "layers": [
                        {"class": "Linear", "in_features": 3, "out_features": 1, "bias": False, "dtype": "float64"}
                    ],
                },
            ],
        },
    }
    assert arrays["architecture"].dtype == arrays["metadata"].dtype == np.uint8
    assert json_of(arrays["metadata"]) == {"units": "m²", "sizes": [2, 3]}  # a tuple comes back a list, as JSON has it
    for name, array in model.state_dict().items():
        assert same_bits([arrays[name]], [array])


def test_a_lone_linear_is_a_model_too_and_no_metadata_is_an_empty_dict(tmp_path):
    layer = tl.nn.Linear(2, 2, seed=3)
    layer.save(tmp_path / "linear")
    loaded = tl.nn.load_model(tmp_path / "linear")
    assert type(loaded) is tl.nn.Linear and loaded.metadata == {}
    assert list(members(tmp_path / "linear")) == ["architecture", "metadata", "weight", "bias"]
    assert same_bits(loaded.get_weights(), layer.get_weights())


def test_an_empty_sequential_round_trips(tmp_path):
    tl.nn.Sequential([]).save(tmp_path / "empty.npz", metadata={"why": "a placeholder"})
    loaded = tl.nn.load_model(tmp_path / "empty.npz")
    assert repr(loaded) == "Sequential([])" and loaded.metadata == {"why": "a placeholder"}


# ----- what save refuses, before anything is written -----


class Doubler(tl.nn.Module):
    def __init__(self):
        self.layer = tl.nn.Linear(1, 1)

    def forward(self, x):
        return self.layer(x) * 2


class Wider(tl.nn.Linear):
    pass


def _shared_layer():
    layer = tl.nn.Linear(2, 2)
    return tl.nn.Sequential([layer, layer])


def _shared_tensor():
    first, second = tl.nn.Linear(2, 2), tl.nn.Linear(2, 2)
    second.weight = first.weight
    return tl.nn.Sequential([first, second])


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (Doubler, TypeError, "save: the model is a Doubler, which a model file cannot describe"),
        (lambda: tl.nn.Sequential([tl.nn.Linear(1, 1), Wider(1, 1)]), TypeError, "save: layer 1 is a Wider"),
        (_shared_layer, ValueError, "save: layer 1 is a layer used twice in the model"),
        (_shared_tensor, ValueError, "save: the weight of layer 1 is a Tensor that another layer holds too"),
        (
            lambda: tl.nn.Linear(1, 1, dtype=np.longdouble),
            ValueError,
            "save: the dtype of the model is '.*', not one of",
        ),
    ],
    ids=["a module of ones own", "a subclass of Linear", "a layer used twice", "a tensor shared", "long double"],
)
def test_save_refuses_a_model_a_file_cannot_describe_and_writes_nothing(tmp_path, make, error, words):
    if "not one of" in words and np.dtype(np.longdouble) == np.float64:
        pytest.skip("long double is float64 on this platform")
    model = make()
    with pytest.raises(error, match=words):
        model.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_refuses_sequentials_nested_deeper_than_it_can_read_back(tmp_path):
    model = tl.nn.Linear(1, 1)
    for _ in range(tl.nn.MAX_NESTING + 1):
        model = tl.nn.Sequential([model])
    with pytest.raises(ValueError, match=f"nests Sequentials more than {tl.nn.MAX_NESTING} deep"):
        model.save(tmp_path / "deep.npz")
    assert os.listdir(tmp_path) == []
    tl.nn.Sequential([model.layers[0].layers[0]]).save(tmp_path / "deepest.npz")  # MAX_NESTING deep: fine
    assert repr(tl.nn.load_model(tmp_path / "deepest.npz")) == repr(model.layers[0])


class Circular(dict):
    pass


def _circular():
    value = Circular()
    value["self"] = value
    return value


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        (["features"], "save: metadata must be a dict, got a list"),
        ({1: "one"}, "save: metadata keys must be strings \\(JSON's\\), got 1"),
        ({"a": [{"b": {2.5: 3}}]}, "save: metadata keys must be strings \\(JSON's\\), got 2.5"),
        ({"mean": float("nan")}, "save: metadata must be JSON-able .*Out of range float values"),
        ({"n": np.int64(3)}, "save: metadata must be JSON-able .*int64 is not JSON serializable"),
        ({"when": object()}, "save: metadata must be JSON-able .*object is not JSON serializable"),
        (_circular(), "save: metadata must be JSON-able .*Circular reference"),
    ],
    ids=["a list", "an int key", "a float key deep inside", "nan", "a numpy int", "an object", "a dict in itself"],
)
def test_save_refuses_metadata_json_cannot_hold_and_leaves_the_old_file(tmp_path, metadata, words):
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)])
    path = tmp_path / "model.npz"
    model.save(path, metadata={"old": True})
    before = path.read_bytes()
    with pytest.raises(ValueError, match=words):
        model.save(path, metadata=metadata)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_save_refuses_json_larger_than_a_reader_accepts(tmp_path, monkeypatch):
    monkeypatch.setattr(tl.nn, "MAX_JSON_BYTES", 200)
    with pytest.raises(ValueError, match="save: metadata takes 209 bytes of JSON; a model file holds at most 200"):
        tl.nn.Linear(1, 1).save(tmp_path / "m.npz", metadata={"text": "x" * 198})
    assert os.listdir(tmp_path) == []


# ----- atomic writes -----


def test_an_interrupted_save_leaves_the_previous_file_whole_and_no_temporary_file(
    tmp_path, monkeypatch, disk_full_after
):
    path = tmp_path / "model.npz"
    model = tl.nn.Sequential([tl.nn.Linear(2, 3, seed=0), tl.nn.Linear(3, 1, seed=1)])
    model.save(path, metadata={"version": "first"})
    saved = model.get_weights()
    model.set_weights([w + 1 for w in saved])
    written = disk_full_after(3)  # the JSON members and one weight go in, then the disk is full
    with pytest.raises(OSError, match="disk full"):
        model.save(path, metadata={"version": "second"})
    monkeypatch.undo()
    assert len(written) == 3  # it did stop midway
    assert os.listdir(tmp_path) == ["model.npz"]
    loaded = tl.nn.load_model(path)
    assert same_bits(loaded.get_weights(), saved) and loaded.metadata == {"version": "first"}


def test_save_writes_a_temporary_file_beside_the_target_then_renames_it(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: renames.append((src, dst)) or real_replace(src, dst))
    tl.nn.Linear(1, 1).save(tmp_path / "m")
    [(src, dst)] = renames
    assert os.path.dirname(src) == str(tmp_path) and dst == str(tmp_path / "m")
    assert os.path.basename(src).startswith(".tmp-weights-")


def test_saving_over_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    path.chmod(0o640)
    tl.nn.Linear(1, 1).save(path)
    assert path.stat().st_mode & 0o777 == 0o640


# ----- crafted files: a ValueError naming the file and the problem, from the headers -----


@pytest.fixture
def source(tmp_path):
    """A model file of Sequential([Linear(2, 1, float64)]) with metadata."""
    path = tmp_path / "model.npz"
    tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0, dtype=np.float64)]).save(path, metadata={"target": "y"})
    return path


def _edited(source, path, edit_architecture=None, **changes):
    """`source`'s members with `changes` (a None drops the member), and its architecture JSON edited by
    `architecture(json) -> json`, written to `path`."""
    arrays = members(source)
    if edit_architecture is not None:
        arrays["architecture"] = text_member(edit_architecture(json_of(arrays["architecture"])))
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    write_members(path, arrays)


def _layer_edit(**changes):
    def edit(description):
        description["model"]["layers"][0].update(changes)
        return description

    return edit


def _nested(depth):
    def edit(description):
        for _ in range(depth):
            description["model"] = {"class": "Sequential", "layers": [description["model"]]}
        return description

    return edit


CRAFTED_MODELS = {
    # name: (changes to the source file, words of the error)
    "extra member": ({"extra": np.zeros(1)}, r"has extra members \['extra'\] for the model its architecture describes"),
    "missing weight": ({"0.bias": None}, r"lacks \['0.bias'\] for the model its architecture describes"),
    "missing metadata": ({"metadata": None}, r"lacks \['metadata'\]"),
    "missing architecture": ({"architecture": None}, "has no 'architecture' member: it is not a model file"),
    "weight of another dtype": (
        {"0.weight": np.zeros((2, 1), np.float32)},
        r"member '0.weight' is float32 of shape \(2, 1\), but the architecture makes it float64 of shape \(2, 1\)",
    ),
    "weight of another shape": (
        {"0.weight": np.zeros((1, 2))},
        r"member '0.weight' is float64 of shape \(1, 2\), but the architecture makes it float64 of shape \(2, 1\)",
    ),
    "non-finite weight": ({"0.bias": np.array([np.nan])}, r"member '0.bias' \(shape \(1,\)\) has non-finite values"),
    "pickled weight": ({"0.bias": np.array([{"evil": 1}], dtype=object)}, "cannot read .*allow_pickle=False"),
    "architecture not text": (
        {"architecture": np.zeros(3)},
        r"member 'architecture' is float64 of shape \(3,\); a model",
    ),
    "architecture of text in 2-d": (
        {"architecture": np.zeros((2, 2), np.uint8)},
        r"member 'architecture' is uint8 of shape \(2, 2\)",
    ),
    "bad JSON": (
        {"architecture": text_member('{"format": ')},
        "member 'architecture' is not JSON text: Expecting value",
    ),
    "not UTF-8": (
        {"architecture": np.frombuffer(b"\xff\xfe", np.uint8)},
        "member 'architecture' is not JSON text: 'utf-8'",
    ),
    "JSON nested too deep for Python": (
        {"architecture": text_member("[" * 100_000 + "]" * 100_000)},
        "member 'architecture' is not JSON text: maximum recursion depth",
    ),
    "bad metadata JSON": ({"metadata": text_member("{'single': 'quotes'}")}, "member 'metadata' is not JSON text"),
    "metadata not an object": ({"metadata": text_member([1, 2])}, "its metadata is a JSON list, not an object"),
    "architecture not an object": ({"architecture": text_member([1])}, "its architecture is not a 'tinygrad_lr.model'"),
    "another format": ({"architecture": text_member({"format": "keras", "version": 1, "model": {}})}, "is not a"),
}

ARCHITECTURE_EDITS = {
    # name: (edit of the architecture's JSON, words of the error)
    "a newer version": (lambda a: {**a, "version": 2}, "has format version 2; this tinygrad_lr reads version 1"),
    "version true": (lambda a: {**a, "version": True}, "has format version True"),
    "an unknown top key": (lambda a: {**a, "extra": 1}, r"has keys \['extra', 'format', 'model', 'version'\]"),
    "an unknown layer class": (
        _layer_edit(**{"class": "Conv2D"}),
        r"layer 0 is \{.*'class': 'Conv2D'.*\}, not a \"Linear\" or a \"Sequential\"",
    ),
    "a layer of another kind": (lambda a: {**a, "model": [1]}, r"the model is \[1\], not a \"Linear\""),
    "an unknown layer key": (_layer_edit(activation="relu"), r"layer 0 has keys \['activation', 'bias'"),
    "zero features": (_layer_edit(in_features=0), "the in_features of layer 0 is 0, not a positive integer"),
    "fractional features": (_layer_edit(out_features=1.5), "the out_features of layer 0 is 1.5, not a positive"),
    "features as text": (_layer_edit(in_features="2"), "the in_features of layer 0 is '2', not a positive"),
    "features as a bool": (_layer_edit(in_features=True), "the in_features of layer 0 is True, not a positive"),
    "a bias of 1": (_layer_edit(bias=1), 'the "bias" of layer 0 is 1, not true or false'),
    "an integer dtype": (_layer_edit(dtype="int64"), "the dtype of layer 0 is 'int64', not one of"),
    "an object dtype": (_layer_edit(dtype="object"), "the dtype of layer 0 is 'object', not one of"),
    "a dtype as a list": (_layer_edit(dtype=["float64"]), r"the dtype of layer 0 is \['float64'\], not one of"),
    "layers not a list": (lambda a: {**a, "model": {"class": "Sequential", "layers": "0"}}, "are '0', not a list"),
    "a billion features": (
        _layer_edit(in_features=10**9),
        r"member '0.weight' is float64 of shape \(2, 1\), but the architecture makes it float64 of shape "
        r"\(1000000000, 1\)",
    ),
    "a billion outputs": (_layer_edit(out_features=10**9), r"member '0.weight' is float64"),
    "Sequentials nested too deep": (_nested(tl.nn.MAX_NESTING + 1), f"nests Sequentials more than {tl.nn.MAX_NESTING}"),
}


def _assert_refused(path, words):
    error, peak = peak_memory(lambda: tl.nn.load_model(path))
    assert isinstance(error, ValueError), repr(error)
    message = str(error)
    assert message.startswith("load_model: ") and repr(str(path)) in message, message
    assert len(message) < 600, message  # a line, not a dump of the file
    assert peak < 10_000_000, f"refusing it took {peak} bytes"
    return message


@pytest.mark.parametrize("case", list(CRAFTED_MODELS))
def test_a_crafted_model_file_is_a_value_error_naming_the_file_and_the_problem(tmp_path, source, case):
    changes, words = CRAFTED_MODELS[case]
    path = tmp_path / "crafted.npz"
    _edited(source, path, **changes)
    assert re.search(words, _assert_refused(path, words))


@pytest.mark.parametrize("case", list(ARCHITECTURE_EDITS))
def test_an_architecture_that_is_not_version_1_is_refused_before_anything_is_built(tmp_path, source, case):
    edit, words = ARCHITECTURE_EDITS[case]
    path = tmp_path / "crafted.npz"
    _edited(source, path, edit_architecture=edit)
    message = _assert_refused(path, words)
    assert re.search(words, message), message
    if "member" not in words:
        assert "its architecture" in message


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_weight_member_is_refused_from_its_header(tmp_path, source, case):
    path = tmp_path / "crafted.npz"
    member = write_crafted(case, source, path, "0.weight", (2, 1))
    assert repr(member) in _assert_refused(path, member)


def test_a_billion_features_and_a_weight_declaring_as_much_are_refused_from_the_header(tmp_path, source):
    edited, path = tmp_path / "edited.npz", tmp_path / "crafted.npz"
    _edited(source, edited, edit_architecture=_layer_edit(in_features=10**9))
    write_crafted("a huge member with a known name", edited, path, "0.weight", (10**9, 1))
    assert "member '0.weight' declares 8000000000000 bytes of data" in _assert_refused(path, "")


def test_a_json_member_larger_than_the_limit_is_refused_before_it_is_read(tmp_path, source, monkeypatch):
    path = tmp_path / "crafted.npz"
    metadata = text_member({"text": "x" * 1000})
    _edited(source, path, metadata=metadata)
    monkeypatch.setattr(tl.nn, "MAX_JSON_BYTES", metadata.size - 1)
    message = _assert_refused(path, "")
    assert f"member 'metadata' is uint8 of shape ({metadata.size},); a model file holds its metadata as JSON" in message
    monkeypatch.setattr(tl.nn, "MAX_JSON_BYTES", metadata.size)
    assert tl.nn.load_model(path).metadata == {"text": "x" * 1000}


@pytest.mark.parametrize(
    ("write", "words"),
    [
        (lambda path: path.write_bytes(b"PK\x03\x04 not a zip"), "cannot read .* \\(truncated or corrupted\\?\\)"),
        (lambda path: path.write_bytes(npy_declaring((2,), bytes(16))), r"holds a single array \(an .npy file\)"),
        (lambda path: path.write_text("a,b\n1,2\n"), "cannot read"),
        (lambda path: path.mkdir(), r"cannot read .* \(Is a directory\)"),
    ],
    ids=["garbage", "an .npy file", "a CSV", "a directory"],
)
def test_what_is_not_an_npz_archive_is_a_value_error(tmp_path, write, words):
    path = tmp_path / "thing"
    write(path)
    assert re.search(words, message_of(ValueError, lambda: tl.nn.load_model(path)))


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        tl.nn.load_model(tmp_path / "missing.npz")


def test_load_weights_of_a_model_file_into_another_model_names_only_the_weights(tmp_path, source):
    deeper = tl.nn.Sequential([tl.nn.Linear(2, 2), tl.nn.Linear(2, 1)])
    before = deeper.get_weights()
    assert message_of(ValueError, lambda: deeper.load_weights(source)) == (
        f"load_weights: {str(source)!r} holds weights ['0.bias', '0.weight'] but this model has "
        "['0.weight', '0.bias', '1.weight', '1.bias']; it was saved from a different model"
    )
    assert same_bits(deeper.get_weights(), before)


# ----- ModelCheckpoint -----


def _checkpoint_run(callback, values, monitor="val_loss"):
    """Call `callback` as fit would, one epoch per value of `monitor`; before epoch k the model's bias is k.
    Returns the model."""
    model = tl.nn.Sequential([tl.nn.Linear(1, 1, seed=0, dtype=np.float64)])
    callback.set_model(model)
    callback.on_train_begin({})
    for epoch, value in enumerate(values):
        model.set_weights([np.ones((1, 1)), np.array([float(epoch)])])
        callback.on_epoch_begin(epoch, {})
        callback.on_epoch_end(epoch, {"loss": 1.0, monitor: value})
    callback.on_train_end({})
    return model


def _bias_in(path):
    return float(tl.nn.load_model(path).get_weights()[1][0])


def test_checkpoint_fills_epoch_from_1_and_the_logs_into_the_file_name(tmp_path):
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.npz")
    _checkpoint_run(tl.callbacks.ModelCheckpoint(pattern), [0.5, 0.25, 0.75])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01-0.50.npz", "ckpt-02-0.25.npz", "ckpt-03-0.75.npz"]
    assert [_bias_in(tmp_path / name) for name in sorted(os.listdir(tmp_path))] == [0.0, 1.0, 2.0]


def test_checkpoint_without_save_best_only_overwrites_one_path_each_epoch(tmp_path):
    path = tmp_path / "last"  # no suffix is added
    _checkpoint_run(tl.callbacks.ModelCheckpoint(path), [0.5, 0.25, 0.75])
    assert os.listdir(tmp_path) == ["last"] and _bias_in(path) == 2.0


@pytest.mark.parametrize(
    ("mode", "values", "saved_epochs"),
    [
        # strictly better than the best so far; a tie or a NaN is not
        ("min", [0.5, 0.4, 0.45, 0.3, 0.3, float("nan"), 0.29], [1, 2, 4, 7]),
        ("max", [0.5, 0.4, 0.6, 0.6, float("nan"), 0.7], [1, 3, 6]),
        ("min", [float("nan"), float("inf"), 3.0], [3]),
    ],
)
def test_save_best_only_writes_only_the_epochs_that_improve(tmp_path, mode, values, saved_epochs):
    pattern = str(tmp_path / "best-{epoch}.npz")
    callback = tl.callbacks.ModelCheckpoint(pattern, save_best_only=True, mode=mode)
    _checkpoint_run(callback, values)
    assert sorted(os.listdir(tmp_path)) == sorted(f"best-{k}.npz" for k in saved_epochs)
    for k in saved_epochs:
        assert _bias_in(tmp_path / f"best-{k}.npz") == k - 1
    assert callback.best == values[saved_epochs[-1] - 1]


def test_save_best_only_to_one_path_keeps_the_best_epochs_model(tmp_path):
    path = tmp_path / "best.npz"
    _checkpoint_run(tl.callbacks.ModelCheckpoint(path, save_best_only=True), [0.5, 0.2, 0.3, 0.4])
    assert _bias_in(path) == 1.0


def test_the_best_value_is_kept_from_one_fit_to_the_next_as_in_keras(tmp_path):
    path = tmp_path / "best.npz"
    callback = tl.callbacks.ModelCheckpoint(path, save_best_only=True)
    _checkpoint_run(callback, [0.5, 0.2])
    _checkpoint_run(callback, [0.3])  # worse than the first fit's best: not written
    assert _bias_in(path) == 1.0 and callback.best == 0.2


def test_mode_auto_maximises_r2_and_minimises_losses(tmp_path):
    r2 = tl.callbacks.ModelCheckpoint(tmp_path / "r2-{epoch}", monitor="val_r2", save_best_only=True, mode="auto")
    _checkpoint_run(r2, [0.5, 0.4, 0.6], monitor="val_r2")
    assert sorted(os.listdir(tmp_path)) == ["r2-1", "r2-3"]
    assert tl.callbacks.ModelCheckpoint("x", mode="auto").mode == "min"


def test_a_monitor_not_logged_warns_and_saves_as_keras_3_does(tmp_path):
    path = tmp_path / "m.npz"
    callback = tl.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    with pytest.warns(UserWarning, match=r"can save the best model only with 'val_loss' logged \(logged: \['loss'\]\)"):
        _checkpoint_run(callback, [0.5], monitor="loss")
    assert _bias_in(path) == 0.0


def test_verbose_prints_keras_lines(tmp_path, capsys):
    path = tmp_path / "m.npz"
    _checkpoint_run(tl.callbacks.ModelCheckpoint(path, save_best_only=True, verbose=1), [0.5, 0.625, 0.25])
    assert capsys.readouterr().out == (
        f"\nEpoch 1: val_loss improved from inf to 0.50000, saving model to {path}\n"
        "\nEpoch 2: val_loss did not improve from 0.50000\n"
        f"\nEpoch 3: val_loss improved from 0.50000 to 0.25000, saving model to {path}\n"
    )
    _checkpoint_run(tl.callbacks.ModelCheckpoint(path, verbose=1), [0.5])
    assert capsys.readouterr().out == f"\nEpoch 1: saving model to {path}\n"


def test_checkpoint_creates_a_missing_folder(tmp_path):
    path = tmp_path / "runs" / "{epoch}" / "model.npz"
    _checkpoint_run(tl.callbacks.ModelCheckpoint(path), [0.5])
    assert _bias_in(tmp_path / "runs" / "1" / "model.npz") == 0.0


def test_a_field_that_is_not_logged_is_a_key_error_naming_it(tmp_path):
    callback = tl.callbacks.ModelCheckpoint(tmp_path / "m-{val_mae:.2f}.npz")
    with pytest.raises(
        KeyError, match=r"'val_mae' is neither 'epoch' nor among the logged values \['loss', 'val_loss'\]"
    ):
        _checkpoint_run(callback, [0.5])


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"save_freq": 10}, "ModelCheckpoint: save_freq must be 'epoch'"),
        ({"mode": "best"}, "ModelCheckpoint: mode must be 'min', 'max' or 'auto'"),
        ({"verbose": -1}, "ModelCheckpoint: verbose"),
    ],
)
def test_checkpoint_refuses_settings_it_does_not_have(kwargs, words):
    with pytest.raises(ValueError, match=words):
        tl.callbacks.ModelCheckpoint("m.npz", **kwargs)


def test_in_fit_the_best_checkpoint_holds_the_weights_of_the_epoch_of_least_val_loss(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = x @ [1.5, -2.0] + 0.5 + rng.normal(size=60)

    class Recorder(tl.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append(self.model.get_weights())

    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0, dtype=np.float64)])
    model.compile(optimizer=tl.optim.SGD(lr=0.3))  # noisy steps: val_loss goes up and down
    recorder = Recorder()
    checkpoint = tl.callbacks.ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    every = tl.callbacks.ModelCheckpoint(tmp_path / "epoch-{epoch}.npz")
    history = model.fit(
        x, y, epochs=12, batch_size=8, validation_split=0.25, verbose=0, seed=1, callbacks=[recorder, checkpoint, every]
    )
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss))  # the first of the least values: later ties do not improve
    assert 0 < best < len(val_loss) - 1  # neither the first epoch nor the last: the callback had to choose
    assert same_bits(tl.nn.load_model(tmp_path / "best.npz").get_weights(), recorder.weights[best])
    for epoch, weights in enumerate(recorder.weights):
        assert same_bits(tl.nn.load_model(tmp_path / f"epoch-{epoch + 1}.npz").get_weights(), weights)
    assert checkpoint.best == val_loss[best]
