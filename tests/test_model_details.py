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
