"""The details of optimizers, losses and modules a user sees: exact messages, reprs, state, files on disk."""

import os
import re
import stat
import struct
import zipfile

import numpy as np
import pytest

import tinygrad_lr as tl

# ----- TrainingDivergedError -----


def test_diverged_error_keeps_its_reason_as_its_argument():
    error = tl.optim.TrainingDivergedError("the loss is nan at step 3", step=3)
    assert error.args == ("the loss is nan at step 3",)
    assert (error.reason, error.step, error.epoch, error.batch, error.advice) == (
        "the loss is nan at step 3",
        3,
        None,
        None,
        None,
    )


def test_diverged_error_without_advice_is_just_its_reason():
    assert str(tl.optim.TrainingDivergedError("the loss is inf at step 2", step=2)) == "the loss is inf at step 2"
    assert str(tl.optim.TrainingDivergedError("boom", step=1, epoch=2, batch=3)) == (
        "fit: training diverged at epoch 2, batch 3: boom"
    )


def test_diverged_error_appends_its_advice_after_a_full_stop():
    error = tl.optim.TrainingDivergedError("boom", step=1, advice="Lower the learning rate")
    assert str(error) == "boom. Lower the learning rate"


# ----- Optimizer: the base class, repr and hyperparameters -----


def test_the_base_optimizer_says_its_rule_is_not_written():
    p = tl.Tensor([1.0], requires_grad=True)
    (p * 2.0).sum().backward()
    with pytest.raises(NotImplementedError) as error:
        tl.optim.Optimizer([p], lr=0.1).step()
    assert str(error.value) == "Optimizer.update is not written"


@pytest.mark.parametrize(
    ("optimizer", "text"),
    [
        (tl.optim.Adam(lr=0.1), "Adam(betas=(0.9, 0.999), eps=1e-08, lr=0.1)"),
        (tl.optim.SGD(), "GradientDescent(momentum=0.0, nesterov=False, lr=0.01)"),
        (tl.optim.RMSprop(momentum=0.5), "RMSprop(rho=0.9, eps=1e-08, momentum=0.5, lr=0.001)"),
        (tl.optim.Newton(damping=0.5), "Newton(damping=0.5, lr=1.0)"),
    ],
)
def test_an_optimizer_reprs_as_its_name_and_hyperparameters(optimizer, text):
    assert repr(optimizer) == text


def test_hyperparameters_leave_out_parameters_state_steps_and_private_attributes():
    class Scaled(tl.optim.GradientDescent):
        def __init__(self, params=None, lr=0.01):
            self._cache = {}
            self.scale = 2.0
            super().__init__(params, lr=lr)

    p = tl.Tensor([1.0], requires_grad=True)
    opt = Scaled([p], lr=0.5)
    (p * 1.0).sum().backward()
    opt.step()
    assert opt.hyperparameters() == {"momentum": 0.0, "nesterov": False, "scale": 2.0, "lr": 0.5}
    assert repr(opt) == "Scaled(scale=2.0, momentum=0.0, nesterov=False, lr=0.5)"


# ----- Newton -----


def test_newton_without_a_closure_says_how_to_call_it():
    p = tl.Tensor(np.array([1.0]), requires_grad=True)
    with pytest.raises(TypeError) as error:
        tl.optim.Newton([p]).step()
    assert str(error.value) == (
        "Newton.step needs a closure that recomputes and returns the loss: opt.step(lambda: loss_fn())"
    )


def test_newton_without_parameters_says_where_to_give_them():
    with pytest.raises(RuntimeError) as error:
        tl.optim.Newton().step(lambda: tl.Tensor(0.0))
    assert str(error.value) == "Newton.step(): no parameters; pass model.parameters() when creating the optimizer"


def test_newton_on_a_linear_loss_steps_by_the_gradient_over_the_damping():
    # the gradient of a linear loss is constant: the Hessian is zero, and (0 + damping·I)⁻¹·g = g / damping
    p = tl.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = tl.optim.Newton([p], lr=1.0, damping=2.0)
    opt.step(lambda: (p * tl.Tensor([3.0, -5.0])).sum())
    np.testing.assert_allclose(p.data, [1.0 - 1.5, -2.0 + 2.5], rtol=1e-12)


def test_newton_steps_each_of_several_parameters_by_its_own_slice_of_the_direction():
    # separable quadratics: each parameter lands on its own target in one step of lr 1
    a = tl.Tensor(np.array([1.0]), requires_grad=True)
    b = tl.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    c = tl.Tensor(np.array([4.0, 5.0, 6.0]), requires_grad=True)
    targets = [np.array([-1.0]), np.array([0.5, -0.5]), np.array([7.0, 8.0, 9.0])]

    def loss():
        return sum(((q - t) * (q - t)).sum() for q, t in zip((a, b, c), targets))

    opt = tl.optim.Newton([a, b, c])
    opt.step(loss)
    for q, t in zip((a, b, c), targets):
        np.testing.assert_allclose(q.data, t, rtol=1e-12, atol=1e-12)


def test_newton_counts_its_steps_overall_and_per_parameter():
    a = tl.Tensor(np.array([1.0]), requires_grad=True)
    b = tl.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    opt = tl.optim.Newton([a, b], lr=0.5)
    for _ in range(3):
        opt.step(lambda: (a * a).sum() + (b * b).sum())
    assert opt.steps == 3
    assert opt.state[a]["step"] == opt.state[b]["step"] == 3


def test_newton_steps_a_long_double_parameter():
    p = tl.Tensor(np.array([1.0, 2.0], dtype=np.longdouble), requires_grad=True)
    tl.optim.Newton([p]).step(lambda: ((p - 0.5) * (p - 0.5)).sum())
    assert p.dtype == np.longdouble
    np.testing.assert_array_equal(p.data, np.array([0.5, 0.5], dtype=np.longdouble))


def test_newton_subtracts_a_step_cast_to_the_parameters_dtype():
    # the step lr·H⁻¹g is rounded to float32 first, then subtracted in float32 (as every optimizer
    # here updates: in the parameter's own dtype), not subtracted in float64 and rounded after
    x = np.array([1.4099537134170532, 1.624464511871338], dtype=np.float32)
    p = tl.Tensor(x.copy(), requires_grad=True)
    tl.optim.Newton([p], lr=0.3).step(lambda: (p * p).sum())  # g = 2p, H = 2I: the direction is p
    expected = x - (0.3 * x.astype(np.float64)).astype(np.float32)
    assert p.dtype == np.float32
    np.testing.assert_array_equal(p.data, expected)


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


# ----- optimizers: defaults, checks and their messages -----


def test_default_hyperparameters_are_keras_and_pytorch_defaults():
    assert repr(tl.optim.Adam()) == "Adam(betas=(0.9, 0.999), eps=1e-08, lr=0.001)"
    assert repr(tl.optim.RMSprop()) == "RMSprop(rho=0.9, eps=1e-08, momentum=0.0, lr=0.001)"
    assert repr(tl.optim.GradientDescent()) == "GradientDescent(momentum=0.0, nesterov=False, lr=0.01)"


def _message(error_type, make):
    with pytest.raises(error_type) as error:
        make()
    return str(error.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: tl.optim.Adam(betas=(-0.1, 0.9)), "Adam: betas[0] must be a finite number >= 0 and < 1, got -0.1"),
        (lambda: tl.optim.Adam(betas=(0.9, -0.5)), "Adam: betas[1] must be a finite number >= 0 and < 1, got -0.5"),
        (lambda: tl.optim.Adam(betas=(0.9, 1.0)), "Adam: betas[1] must be a finite number >= 0 and < 1, got 1.0"),
        (lambda: tl.optim.RMSprop(rho=-0.1), "RMSprop: rho must be a finite number >= 0 and < 1, got -0.1"),
        (lambda: tl.optim.SGD(nesterov=True), "GradientDescent: nesterov=True needs a momentum > 0"),
    ],
)
def test_a_hyperparameter_out_of_range_is_refused_with_its_bounds(make, message):
    assert _message(ValueError, make) == message


def test_beta_and_rho_may_be_zero():
    assert tl.optim.Adam(betas=(0.0, 0.0)).betas == (0.0, 0.0)
    assert tl.optim.RMSprop(rho=0.0).rho == 0.0


def test_binding_a_tensor_without_gradient_names_the_optimizer_and_the_parameter():
    good, frozen = tl.Tensor([1.0], requires_grad=True), tl.Tensor([1.0])
    assert _message(TypeError, lambda: tl.optim.RMSprop([good, frozen])) == (
        "RMSprop: parameter 1 must be a Tensor with requires_grad=True"
    )


def test_a_parameter_given_twice_is_refused_with_the_reason():
    p = tl.Tensor([1.0], requires_grad=True)
    assert _message(ValueError, lambda: tl.optim.Adam([p, p])) == (
        "Adam: parameter 1 is parameter 0 again; give each parameter once (model.parameters() lists a layer "
        "used twice once), or it is stepped twice"
    )


def test_stepping_an_unbound_optimizer_says_how_to_bind_it():
    assert _message(RuntimeError, lambda: tl.optim.RMSprop().step()) == (
        "RMSprop.step(): no parameters; pass model.parameters() when creating the optimizer, or give it to "
        "model.compile(optimizer=...)"
    )


def test_plain_gradient_descent_keeps_no_momentum_buffer():
    p = tl.Tensor([1.0], requires_grad=True)
    opt = tl.optim.SGD([p])
    p.grad = np.array([1.0], np.float32)
    opt.step()
    assert opt.state[p] == {"step": 1}
    opt.momentum = 0.5
    opt.step()
    assert sorted(opt.state[p]) == ["momentum_buffer", "step"]


# ----- safe_step -----


def test_safe_step_takes_a_plain_float_loss():
    p = tl.Tensor(np.array([1.0]), requires_grad=True)
    opt = tl.optim.SGD([p], lr=0.5)
    p.grad = np.array([2.0])
    opt.safe_step(0.25)
    np.testing.assert_array_equal(p.data, [0.0])
    with pytest.raises(tl.optim.TrainingDivergedError) as error:
        opt.safe_step(float("nan"))
    assert str(error.value) == "the loss is nan at step 2; the parameters were not updated"
    assert error.value.step == 2 and error.value.advice is None
    np.testing.assert_array_equal(p.data, [0.0])


def test_safe_step_names_the_parameter_that_became_non_finite_and_advises():
    a = tl.Tensor(np.array([1.0]), requires_grad=True)
    b = tl.Tensor(np.array([[1.0, 2.0]]), requires_grad=True)
    opt = tl.optim.SGD([a, b], lr=0.5)
    a.grad, b.grad = np.array([1.0]), np.array([[np.inf, 0.0]])
    with pytest.raises(tl.optim.TrainingDivergedError) as error:
        opt.safe_step()
    assert error.value.step == 1
    assert error.value.advice == (
        "Lower the learning rate (tl.solvers.stable_learning_rate(X) is the bound for plain gradient descent on a "
        "linear model) or standardise the features"
    )
    assert str(error.value) == (
        "parameter 1 (shape (1, 2)) became non-finite at step 1; the parameters were put back to their values "
        "before that step. " + error.value.advice
    )
    np.testing.assert_array_equal(a.data, [1.0])
    np.testing.assert_array_equal(b.data, [[1.0, 2.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, None])
def test_safe_step_tells_huge_finite_weights_from_non_finite_ones(dtype, bad):
    """Σw² overflows for these finite weights; only a real nan or inf is divergence."""
    huge = np.finfo(dtype).max / 4
    p = tl.Tensor(np.array([huge, -huge, 1.0], dtype), requires_grad=True)
    opt = tl.optim.SGD([p], lr=1.0)
    p.grad = np.array([0.0, 0.0, 0.0 if bad is None else -bad], dtype)
    if bad is None:
        opt.safe_step()
        np.testing.assert_array_equal(p.data, [huge, -huge, 1.0])
    else:
        with pytest.raises(tl.optim.TrainingDivergedError):
            opt.safe_step()


# ----- r2_score -----


def _r2(pred, target):
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    return 1 - float(np.sum((pred - target) ** 2)) / float(np.sum((target - target.mean(axis=0)) ** 2))


def test_r2_score_is_computed_in_float64_whatever_the_prediction_dtype():
    pred = np.array([0.1, 0.25, 0.6, 0.3], dtype=np.float32)
    target = np.array([0.1, 0.2, 0.7, 0.35])
    assert tl.losses.r2_score(pred, target) == _r2(pred, target)
    assert tl.losses.r2_score(tl.Tensor(pred), target) == _r2(pred, target)


def test_r2_score_of_several_outputs_measures_each_against_its_own_mean():
    target = np.array([[0.0, 10.0], [1.0, 12.0], [2.0, 11.0]])
    pred = np.array([[0.5, 10.5], [1.0, 11.0], [1.5, 11.5]])
    assert tl.losses.r2_score(pred, target) == _r2(pred, target)
    assert tl.losses.r2_score(pred, target) == pytest.approx(1 - 2.0 / 4.0)


def test_r2_score_of_a_target_with_small_variance_is_still_a_number():
    target = np.array([0.0, 0.5, 0.25])
    pred = np.array([0.1, 0.4, 0.25])
    assert tl.losses.r2_score(pred, target) == _r2(pred, target)
    assert tl.losses.r2_score(pred, target) == pytest.approx(1 - 0.02 / 0.125)


# ----- weights files: what load_weights says -----


def test_load_weights_of_a_different_model_lists_both_sets_of_names(tmp_path):
    path = tmp_path / "w.npz"
    tl.nn.Sequential([tl.nn.Linear(2, 1, seed=0)]).save_weights(path)
    deeper = tl.nn.Sequential([tl.nn.Linear(2, 2), tl.nn.Linear(2, 1)])
    assert _message(ValueError, lambda: deeper.load_weights(path)) == (
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
    assert _message(ValueError, lambda: model.load_weights(garbage)) == (
        f"load_weights: cannot read {str(garbage)!r} as a weights file (truncated or corrupted?): {cause}"
    )
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"0.weight": np.array([{"evil": 1}], dtype=object), "0.bias": np.zeros(1)})
    cause = _numpy_error(lambda: np.load(pickled, allow_pickle=False)["0.weight"])
    assert _message(ValueError, lambda: model.load_weights(pickled)) == (
        f"load_weights: cannot read {str(pickled)!r} as a weights file (truncated or corrupted?): {cause}"
    )


def test_load_weights_of_a_single_array_file_says_it_is_not_an_archive(tmp_path):
    path = tmp_path / "one.npy"
    np.save(path, np.zeros(2))
    assert _message(ValueError, lambda: tl.nn.Linear(1, 1).load_weights(path)) == (
        f"load_weights: {str(path)!r} holds a single array (an .npy file), not the named weights of an .npz "
        "archive; load the file that model.save_weights wrote"
    )


def test_load_weights_of_an_archive_with_a_raw_member_names_the_member(tmp_path):
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weight", b"not an array")
        archive.writestr("bias.npy", b"")
    assert _message(ValueError, lambda: tl.nn.Linear(1, 1).load_weights(path)) == (
        f"load_weights: {str(path)!r} member 'weight' is not an array (.npy); the file was not written by save_weights"
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
    assert _message(ValueError, make) == message


def test_linear_casts_plain_input_to_its_own_dtype():
    layer32 = tl.nn.Linear(3, 2, seed=0)
    assert layer32(np.ones((2, 3), dtype=np.float64)).dtype == np.float32
    layer64 = tl.nn.Linear(3, 2, seed=0, dtype=np.float64)
    assert layer64([[1, 2, 3]]).dtype == np.float64


def test_linear_wrong_feature_count_messages():
    assert _message(ValueError, lambda: tl.nn.Linear(3, 1)(np.zeros((4, 2)))) == (
        "Linear(3, 1, bias=True): input has shape (4, 2); its last axis must hold 3 features"
    )
    assert _message(ValueError, lambda: tl.nn.Linear(1, 2, bias=False)(np.zeros(10))) == (
        "Linear(1, 2, bias=False): input has shape (10,); its last axis must hold 1 features (for n samples of one "
        "feature use shape (n, 1))"
    )


def test_output_shape_replaces_only_the_last_axis():
    assert tl.nn.Linear(3, 2).output_shape((None, 5, 3)) == (None, 5, 2)
    assert tl.nn.Linear(3, 2).output_shape((3,)) == (2,)
    model = tl.nn.Sequential([tl.nn.Linear(3, 4), tl.nn.Linear(4, 1)])
    assert model.output_shape((7, 6, 3)) == (7, 6, 1)


def test_sequential_names_the_layer_that_is_not_a_module():
    assert _message(TypeError, lambda: tl.nn.Sequential([tl.nn.Linear(1, 1), "relu"])) == (
        "Sequential: layer 1 is a str, not a Module"
    )


# ----- losses of plain data -----


@pytest.mark.parametrize("loss", [tl.losses.mse, tl.losses.mae])
def test_a_loss_takes_plain_lists_and_integer_arrays_as_a_prediction(loss):
    # a plain prediction becomes a Tensor first (integers: float32), and the target takes its dtype
    from_list = loss([1, 2, 4], [1.5, 2.5, 3.0])
    from_ints = loss(np.array([1, 2, 4]), np.array([1.5, 2.5, 3.0]))
    expected = loss(tl.Tensor(np.array([1.0, 2.0, 4.0], dtype=np.float32)), np.array([1.5, 2.5, 3.0]))
    for value in (from_list, from_ints):
        assert isinstance(value, tl.Tensor) and value.dtype == np.float32
        assert value.item() == expected.item()
    assert expected.item() == pytest.approx({"mse": 1.5 / 3, "mae": 2.0 / 3}[loss.__name__])
