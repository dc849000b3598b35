"""Nothing silent, nothing lost: bad input, divergence, interruption, weights on disk, determinism."""

import io
import math
import os
import re
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_lr as tl


def _model(n_in=1, optimizer=None, seed=0, dtype=np.float32):
    model = tl.nn.Sequential([tl.nn.Linear(n_in, 1, seed=seed, dtype=dtype)])
    model.compile(optimizer=optimizer or tl.optim.SGD(lr=0.01))
    return model


def _same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


X_GOOD, Y_GOOD = np.arange(6.0).reshape(3, 2), np.array([1.0, 2.0, 3.0])

BAD_FIT_INPUTS = [
    # (x, y, kwargs, error, words)
    (
        np.array([[1.0, np.nan], [2.0, 3.0]]),
        [1.0, 2.0],
        {},
        ValueError,
        r"x \(shape \(2, 2\)\) has non-finite.*index \(0, 1\)",
    ),
    (X_GOOD, [1.0, np.inf, 2.0], {}, ValueError, r"y .* non-finite values: the first is inf at index \(1,\)"),
    (np.array([[1e300, 1.0]]), [1.0], {}, ValueError, "beyond float32"),
    (np.zeros((0, 2)), np.zeros(0), {}, ValueError, "at least one sample"),
    (X_GOOD, [1.0, 2.0], {}, ValueError, r"x has 3 samples.*y has 2"),
    (np.ones((3, 3)), Y_GOOD, {}, ValueError, r"shape \(3, 3\), 3 feature\(s\) per sample, but the model takes 2"),
    (np.ones(3), Y_GOOD, {}, ValueError, "1-D x is read as n samples of one feature"),
    (np.ones((3, 2, 1)), Y_GOOD, {}, ValueError, r"expected \(n,\) or \(n, features\)"),
    (np.array([["a", "b"]] * 3), Y_GOOD, {}, TypeError, "must hold real numbers"),
    (None, Y_GOOD, {}, TypeError, "must hold real numbers"),
    ([[1.0, 2.0], [3.0]], [1.0, 2.0], {}, ValueError, "not a rectangular array"),
    (X_GOOD, np.ones((3, 2)), {}, ValueError, r"y has shape \(3, 2\) but the model has 1 output"),
    (X_GOOD, Y_GOOD, {"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
    (X_GOOD, Y_GOOD, {"epochs": -2}, ValueError, "epochs must be an integer >= 1"),
    (X_GOOD, Y_GOOD, {"epochs": 2.5}, ValueError, "epochs must be an integer >= 1"),
    (X_GOOD, Y_GOOD, {"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
    (X_GOOD, Y_GOOD, {"batch_size": -4}, ValueError, "batch_size must be an integer >= 1"),
    (X_GOOD, Y_GOOD, {"validation_split": 0.9}, ValueError, "no training sample"),
    (X_GOOD, Y_GOOD, {"validation_split": 1.0}, ValueError, "validation"),
    (X_GOOD, Y_GOOD, {"validation_data": (X_GOOD,)}, ValueError, "validation_data must be a pair"),
    (X_GOOD, Y_GOOD, {"validation_data": (X_GOOD, [np.nan] * 3)}, ValueError, r"fit \(validation_data\): y"),
]


@pytest.mark.parametrize(("x", "y", "kwargs", "error", "words"), BAD_FIT_INPUTS)
def test_bad_fit_input_is_refused_clearly_and_changes_nothing(x, y, kwargs, error, words):
    model = _model(n_in=2)
    before = model.get_weights()
    with pytest.raises(error, match=words):
        model.fit(x, y, verbose=0, **kwargs)
    assert _same_weights(before, model.get_weights())


def test_integer_data_are_accepted_and_converted():
    model = _model(n_in=2)
    model.fit(np.array([[1, 2], [3, 4], [5, 6]]), np.array([1, 2, 3]), epochs=2, verbose=0)
    assert model.predict(np.array([[1, 2]])).dtype == np.float32


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda m: m.predict([[np.nan, 1.0]]), "non-finite"),
        (lambda m: m.predict(np.ones((2, 5))), "the model takes 2"),
        (lambda m: m.predict([]), "at least one sample"),
        (lambda m: m.evaluate(X_GOOD, [1.0]), "3 samples"),
        (lambda m: m.evaluate(X_GOOD, [1.0, np.nan, 2.0]), "non-finite"),
    ],
)
def test_bad_predict_and_evaluate_input_is_refused(call, words):
    with pytest.raises(ValueError, match=words):
        call(_model(n_in=2))


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda m: m.predict(X_GOOD, batch_size=0), "predict: batch_size must be an integer >= 1, got 0"),
        (lambda m: m.predict(X_GOOD, batch_size=True), "predict: batch_size must be an integer >= 1, got True"),
        (lambda m: m.evaluate(X_GOOD, Y_GOOD, batch_size=-5), "evaluate: batch_size must be an integer >= 1, got -5"),
        (lambda m: m.evaluate(X_GOOD, Y_GOOD, batch_size=2.0), "evaluate: batch_size must be an integer >= 1"),
    ],
)
def test_predict_and_evaluate_check_batch_size_like_fit(call, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        call(_model(n_in=2))


def test_predict_and_evaluate_take_batch_size_none():
    model = _model(n_in=2)
    assert model.predict(X_GOOD, batch_size=None).shape == (3, 1)
    assert isinstance(model.evaluate(X_GOOD, Y_GOOD, batch_size=None), float)


def test_a_model_without_layers_cannot_predict_and_says_so():
    with pytest.raises(ValueError, match=r"predict: the model has no parameters \(no layers with weights\)"):
        tl.nn.Sequential([]).predict(np.ones((2, 1)))


@pytest.mark.parametrize(
    ("callbacks", "words"),
    [
        (tl.callbacks.EarlyStopping(monitor="loss"), r"callbacks must be a list of tl.callbacks.Callback, got one "
         r"EarlyStopping; wrap it in a list: callbacks=\[...\]"),
        ([tl.callbacks.History(), "early_stopping"], r"callbacks\[1\] is a str, not a tl.callbacks.Callback"),
        ("early_stopping", r"callbacks must be a list of tl.callbacks.Callback, got a str"),
    ],
)  # fmt: skip
def test_callbacks_must_be_a_list_of_callbacks(callbacks, words):
    model = _model(n_in=2)
    before = model.get_weights()
    with pytest.raises(TypeError, match=words):
        model.fit(X_GOOD, Y_GOOD, verbose=0, callbacks=callbacks)
    assert _same_weights(before, model.get_weights())


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: tl.solvers.ols([[1.0], [np.nan]], [1.0, 2.0]), "non-finite"),
        (lambda: tl.solvers.ols([[1.0], [2.0]], [1.0]), "2 samples but y has 1"),
        (lambda: tl.solvers.ridge([[1.0], [2.0]], [1.0, 2.0], l2=-1.0), "l2"),
        (lambda: tl.solvers.ols(np.zeros((0, 1)), np.zeros(0)), "empty|no samples|at least one"),
    ],
)
def test_bad_solver_input_is_refused(call, words):
    with pytest.raises(ValueError, match=words):
        call()


class RecordWeights(tl.callbacks.Callback):
    """Keeps the weights after every completed step."""

    def __init__(self):
        self.after_step = []

    def on_batch_end(self, batch, logs=None):
        self.after_step.append(self.model.get_weights())


def test_divergence_raises_names_the_step_keeps_last_finite_weights_and_history():
    x = np.arange(100.0)
    model = _model(optimizer=tl.optim.SGD(lr=0.01))
    recorder = RecordWeights()
    with pytest.raises(tl.TrainingDivergedError) as info:
        model.fit(x, 3 * x + 1, epochs=50, batch_size=32, shuffle=False, verbose=0, callbacks=[recorder])
    message = str(info.value)
    steps_done = len(recorder.after_step)  # 4 batches an epoch
    assert f"epoch {steps_done // 4 + 1}, batch {steps_done % 4 + 1}" in message
    assert f"step {steps_done + 1}" in message
    assert "largest stable learning rate is 0.000304" in message
    assert message.count("Lower the learning rate") == 1
    weights = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in weights)
    assert _same_weights(weights, recorder.after_step[-1])
    assert len(model.history.history["loss"]) == steps_done // 4  # the completed epochs are kept


def test_a_parameter_turning_non_finite_is_undone():
    model = _model(optimizer=tl.optim.SGD(lr=1e38))  # the update overflows float32 while the loss is finite
    recorder = RecordWeights()
    with pytest.raises(tl.TrainingDivergedError, match=r"parameter \d \(shape .*\) became non-finite at step 1"):
        model.fit([1.0, 2.0], [10.0, 20.0], epochs=3, verbose=0, callbacks=[recorder])
    assert recorder.after_step == []
    np.testing.assert_array_equal(model.get_weights()[1], [0.0])  # the initial bias, not inf


def test_divergence_can_warn_instead_of_raising():
    x = np.arange(100.0)
    model = _model(optimizer=tl.optim.SGD(lr=0.01))
    with pytest.warns(RuntimeWarning, match="training diverged"):
        history = model.fit(x, 3 * x, epochs=50, verbose=0, raise_on_divergence=False)
    assert len(history.history["loss"]) == 2 and all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_safe_step_guards_a_hand_written_loop():
    w = tl.Tensor([1.0], requires_grad=True)
    opt = tl.optim.SGD([w], lr=1.0)
    loss = (w * float("inf")).sum()
    loss.backward()
    with pytest.raises(tl.TrainingDivergedError, match="the loss is inf at step 1; the parameters were not updated"):
        opt.safe_step(loss)
    np.testing.assert_array_equal(w.data, [1.0])
    opt.zero_grad()
    (w * 2.0).sum().backward()
    opt.safe_step()
    np.testing.assert_array_equal(w.data, [-1.0])
    assert opt.steps == 1


def test_ctrl_c_between_steps_keeps_last_step_and_marks_history():
    class Interrupt(RecordWeights):
        def on_batch_end(self, batch, logs=None):
            super().on_batch_end(batch, logs)
            if len(self.after_step) == 5:
                raise KeyboardInterrupt

    model = _model()
    interrupt = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        model.fit(np.arange(8.0), np.arange(8.0), epochs=10, batch_size=4, verbose=0, callbacks=[interrupt])
    assert _same_weights(model.get_weights(), interrupt.after_step[-1])
    assert model.history.interrupted and len(model.history.history["loss"]) == 2


def test_ctrl_c_inside_an_update_never_leaves_half_updated_parameters():
    class InterruptedOnFourthUpdate(np.ndarray):
        updates = 0

        @classmethod
        def count_an_update(cls):
            cls.updates += 1
            if cls.updates == 4:  # the weight of step 4 is already updated, this bias not yet
                raise KeyboardInterrupt

        # (an optimizer writes a parameter in place either way)
        def __isub__(self, change):
            self.count_an_update()
            return super().__isub__(change)

        def __setitem__(self, index, values):
            self.count_an_update()
            super().__setitem__(index, values)

    class RecordMoments(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            self.moments = [(s["m"].copy(), s["v"].copy()) for s in optimizer.state.values()]

    optimizer = tl.optim.Adam(lr=0.1)
    model = _model(n_in=2, optimizer=optimizer)
    bias = model.layers[0].bias
    bias.data = bias.data.view(InterruptedOnFourthUpdate)
    recorder, moments = RecordWeights(), RecordMoments()
    with pytest.raises(KeyboardInterrupt):
        model.fit(X_GOOD, Y_GOOD, epochs=10, batch_size=1, verbose=0, callbacks=[recorder, moments])
    assert len(recorder.after_step) == 3
    assert _same_weights(model.get_weights(), recorder.after_step[-1])
    for (m, v), state in zip(moments.moments, optimizer.state.values()):  # Adam's moments are those of step 3 too
        np.testing.assert_array_equal(m, state["m"])
        np.testing.assert_array_equal(v, state["v"])
    assert optimizer.steps == 3
    assert model.history.interrupted


def test_a_crash_while_saving_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    model = _model(n_in=2)
    model.save_weights(path)
    saved = model.get_weights()
    model.set_weights([np.full((2, 1), 7.0), np.array([7.0])])

    def crash_halfway(file, array, **kwargs):
        file.write(b"\x93NUMPY half of an array")
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind
    fresh = _model(n_in=2, seed=3)
    fresh.load_weights(path)
    assert _same_weights(fresh.get_weights(), saved)


def test_saving_over_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    path.chmod(0o640)
    _model(n_in=2).save_weights(path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_new_weights_file_gets_the_mode_open_would_give(tmp_path):
    old_umask = os.umask(0o027)
    try:
        _model(n_in=2).save_weights(tmp_path / "model.npz")
        with open(tmp_path / "plain", "wb"):
            pass
    finally:
        os.umask(old_umask)
    assert (tmp_path / "model.npz").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o640


def test_saving_through_a_symlink_replaces_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    model = _model(n_in=2)
    model.save_weights(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    fresh = _model(n_in=2, seed=3)
    fresh.load_weights(target)
    assert _same_weights(fresh.get_weights(), model.get_weights())
    assert sorted(os.listdir(tmp_path / "real")) == ["model.npz"] and sorted(os.listdir(tmp_path)) == [
        "link.npz",
        "real",
    ]


class NamedFile(tl.nn.Module):
    """A module whose parameters are named like np.savez's keyword arguments."""

    def __init__(self):
        self.file = tl.Tensor(np.array([1.0, 2.0]), requires_grad=True)
        self.allow_pickle = tl.Tensor(np.array([3.0]), requires_grad=True)


def test_parameter_names_never_collide_with_keywords_when_saving(tmp_path):
    model = NamedFile()
    model.save_weights(tmp_path / "named.npz")
    with np.load(tmp_path / "named.npz") as archive:  # the format np.load reads: one name.npy per array
        assert sorted(archive.files) == ["allow_pickle", "file"]
        np.testing.assert_array_equal(archive["file"], [1.0, 2.0])
    other = NamedFile()
    other.set_weights([np.zeros(2), np.zeros(1)])
    other.load_weights(tmp_path / "named.npz")
    assert _same_weights(other.get_weights(), model.get_weights())


def test_a_truncated_weights_file_is_reported(tmp_path):
    path = tmp_path / "model.npz"
    model = _model(n_in=2)
    model.save_weights(path)
    path.write_bytes(path.read_bytes()[:100])
    before = model.get_weights()
    with pytest.raises(ValueError, match="truncated or corrupted"):
        model.load_weights(path)
    assert _same_weights(before, model.get_weights())


def test_weights_with_other_names_are_refused(tmp_path):
    path = tmp_path / "renamed.npz"
    np.savez(path, **{"0.kernel": np.zeros((2, 1)), "0.bias": np.zeros(1)})
    with pytest.raises(ValueError, match="different model"):
        _model(n_in=2).load_weights(path)


def _npy_file(path):
    """One array in NumPy's .npy format, at exactly `path` (np.save would add .npy to the name)."""
    with open(path, "wb") as file:
        np.save(file, np.zeros(3))


def _zip_of_raw_members(path, **members):
    """An .npz-looking zip whose members are raw bytes, not .npy arrays."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


ODD_WEIGHT_FILES = [
    # (how to write the file at path, words)
    (_npy_file, r"holds a single array \(an .npy file\)"),
    (lambda path: _zip_of_raw_members(path, **{"0.weight": b"1 2", "0.bias": b"0"}), r"'0.weight' is not an array"),
    (
        lambda path: np.savez(path, **{"0.weight": np.array([["a"], ["b"]]), "0.bias": np.zeros(1)}),
        r"'0.weight' must hold real numbers, got an array of dtype <U1",
    ),
    (
        lambda path: np.savez(path, **{"0.weight": np.zeros((2, 1)), "0.bias": np.ones(1, complex)}),
        r"'0.bias' must hold real numbers, got an array of dtype complex128",
    ),
    (
        lambda path: np.savez(path, **{"0.weight": np.zeros((2, 1)), "0.bias": np.array([1e300])}),
        r"'0.bias' \(shape \(1,\)\) has values beyond float32",
    ),
    (lambda path: path.write_text("0.weight,0.bias\n1,2\n"), "cannot read"),
]


@pytest.mark.parametrize(("write", "words"), ODD_WEIGHT_FILES)
def test_an_odd_weights_file_is_a_value_error_and_changes_nothing(tmp_path, write, words):
    path = tmp_path / "odd.npz"
    write(path)
    model = _model(n_in=2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=words):
        model.load_weights(path)
    assert _same_weights(before, model.get_weights())


# ----- crafted weights files: every member's header is checked before any data are read -----


def npy_declaring(shape, data=b"", descr="<f8"):
    """An .npy member's bytes: a header declaring `shape` of `descr`, then `data`, which need not fit it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue() + data


def claim_size(path, member, size):
    """Make the zip's central directory say that `member` holds `size` bytes, whatever the file holds."""
    data = bytearray(path.read_bytes())
    for match in re.finditer(rb"PK\x01\x02", data):  # a central directory entry: its name at 46, sizes at 20
        start = match.start()
        length = int.from_bytes(data[start + 28 : start + 30], "little")
        if data[start + 46 : start + 46 + length] == member.encode():
            data[start + 20 : start + 28] = size.to_bytes(4, "little") * 2  # compressed and uncompressed
    path.write_bytes(data)


CRAFTED = [
    "a huge member with an unknown name",
    "a huge member with a known name",
    "a member of another shape, every byte present",
    "a header whose shape disagrees with its entry's size",
    "a truncated member",
    "an entry that claims more bytes than the file holds",
]


def write_crafted(case, source, path, name, shape):
    """The weights file `source`, whose member `name` has `shape`, copied to `path` with a member crafted
    as `case` says (added, or in place of its own); returns the crafted member's name."""
    n = math.prod(shape)
    huge = (10**12,)  # 8 TB of float64, declared in a file of 200 kB
    members = {
        "a huge member with an unknown name": lambda: {"extra": npy_declaring(huge, bytes(196_000))},
        "a huge member with a known name": lambda: {name: npy_declaring(huge, bytes(196_000))},
        "a member of another shape, every byte present": lambda: {
            name: npy_declaring((2_000_000, 1), bytes(16_000_000))
        },
        "a header whose shape disagrees with its entry's size": lambda: {name: npy_declaring(shape, bytes(8 * n + 8))},
        "a truncated member": lambda: {name: npy_declaring(shape, bytes(8 * n - 3))},
        "an entry that claims more bytes than the file holds": lambda: {name: npy_declaring((2**28,), bytes(8 * n))},
    }[case]()
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w") as copy:
        for info in original.infolist():
            if info.filename.removesuffix(".npy") not in members:
                copy.writestr(info.filename, original.read(info))
        for member, content in members.items():
            copy.writestr(f"{member}.npy", content)
    if case == "an entry that claims more bytes than the file holds":
        claim_size(path, f"{name}.npy", len(npy_declaring((2**28,))) + 8 * 2**28)  # 2 GiB
    return next(iter(members))


def peak_memory(call):
    """(what `call()` returned or the exception it raised, the peak of the memory it allocated in bytes,
    as tracemalloc counts it)."""
    tracemalloc.start()
    try:
        outcome = call()
    except Exception as error:
        outcome = error
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, peak


@pytest.mark.parametrize("case", CRAFTED)
def test_a_crafted_weights_file_is_refused_from_its_headers_and_changes_nothing(tmp_path, case):
    source, path = tmp_path / "model.npz", tmp_path / "crafted.npz"
    model = _model(n_in=2)
    model.save_weights(source)
    member = write_crafted(case, source, path, "0.weight", (2, 1))
    before = model.get_weights()
    error, peak = peak_memory(lambda: model.load_weights(path))
    assert isinstance(error, ValueError), repr(error)
    assert repr(str(path)) in str(error) and member in str(error), error
    assert peak < 10_000_000, f"refusing it took {peak} bytes"
    assert _same_weights(before, model.get_weights())


def test_a_compressed_weights_file_is_refused_saying_how_to_save_it(tmp_path):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **_model(n_in=2).state_dict())
    with pytest.raises(ValueError, match=r"member '0.weight' is compressed.*np.savez_compressed"):
        _model(n_in=2, seed=1).load_weights(path)


def _train(model_seed, fit_seed):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    y = x @ [1.0, -2.0] + rng.normal(size=50)
    model = tl.nn.Sequential([tl.nn.Linear(2, 1, seed=model_seed)])
    model.compile(optimizer="adam", metrics=["mae"])
    history = model.fit(x, y, epochs=5, batch_size=8, validation_split=0.2, seed=fit_seed, verbose=0)
    return model.get_weights(), history.history


def test_same_seed_is_bit_identical_and_different_seeds_differ():
    weights, history = _train(1, 2)
    again_weights, again_history = _train(1, 2)
    assert _same_weights(weights, again_weights) and history == again_history
    assert not _same_weights(weights, _train(1, 3)[0])  # another shuffle
    assert not _same_weights(weights, _train(4, 2)[0])  # another initialisation


DTYPES = st.sampled_from(["float16", "float32", "float64", "int8", "int64", "bool", "complex64", "U3", "O"])


@given(
    x_shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    y_shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    x_dtype=DTYPES,
    y_dtype=DTYPES,
    n_in=st.integers(1, 3),
)
def test_fit_and_predict_give_a_result_or_a_clean_error(x_shape, y_shape, x_dtype, y_dtype, n_in):
    x = np.ones(x_shape, dtype=x_dtype) if x_dtype != "O" else np.full(x_shape, None)
    y = np.ones(y_shape, dtype=y_dtype) if y_dtype != "O" else np.full(y_shape, None)
    model = _model(n_in=n_in)
    try:
        out = model.predict(x)
        assert out.shape == (len(out), 1)
    except (ValueError, TypeError) as error:
        assert str(error)
    try:
        history = model.fit(x, y, epochs=1, verbose=0)
        assert len(history.history["loss"]) == 1
    except (ValueError, TypeError) as error:
        assert str(error)
