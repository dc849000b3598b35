"""gradcheck itself: it passes correct gradients and catches wrong ones."""

import numpy as np
import pytest

import tinygrad_lr as tl


def _tensor(shape, seed=0, dtype=np.float64):
    return tl.Tensor(np.random.default_rng(seed).uniform(0.5, 2.0, shape).astype(dtype), requires_grad=True)


def test_accepts_scalar_output():
    assert tl.gradcheck(lambda x: (x * x).sum(), _tensor((3, 2))) is True


def test_accepts_non_scalar_output_and_several_inputs():
    a, b, c = _tensor((3, 2), 1), _tensor((2, 4), 2), _tensor((4,), 3)
    assert tl.gradcheck(lambda a, b, c: (a @ b) * c.log() + a.sum(), a, b, c)


def test_skips_inputs_that_do_not_require_grad():
    x, constant = _tensor((3,)), tl.Tensor(np.array([1.0, 2.0, 3.0]))
    assert tl.gradcheck(lambda x, c: x * c, x, constant)
    assert tl.gradcheck(lambda x, k: x * k, x, 4.0)  # non-tensor arguments pass through


def test_float32_inputs_are_checked_in_float64_and_left_untouched():
    x = _tensor((4,), dtype=np.float32)
    before = x.data.copy()
    assert tl.gradcheck(lambda x: (x**3).sum(), x, atol=1e-9, rtol=1e-7)
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


def test_catches_x_times_detached_x():
    x = _tensor((3,))
    with pytest.raises(tl.GradcheckError) as info:
        tl.gradcheck(lambda x: x * x.detach(), x)
    message = str(info.value)
    assert "input 0" in message and "element (0,)" in message
    # analytic d(x·c)/dx = x, numerical d(x²)/dx = 2x
    value = x.data[0]
    assert f"analytic d(out)/d(in) = {value:.8g}" in message
    assert f"numerical = {2 * value:.8g}" in message


def test_catches_a_user_op_with_a_wrong_backward():
    class WrongSin(tl.Function):
        def forward(self, x):
            self.x = x
            return np.sin(x)

        def backward(self, grad):
            return grad * np.sin(self.x)  # should be cos

    x, y = _tensor((2,)), _tensor((2, 2), 5)
    with pytest.raises(tl.GradcheckError, match="input 1"):
        tl.gradcheck(lambda x, y: x * 2 + WrongSin.apply(y), x, y)


def test_catches_a_gradient_wrong_only_at_one_element():
    class OffAtOne(tl.Function):
        def forward(self, x):
            return x * 2

        def backward(self, grad):
            g = grad * 2
            g[1, 0] += 0.1
            return g

    with pytest.raises(tl.GradcheckError, match=r"element \(1, 0\)") as info:
        tl.gradcheck(lambda x: OffAtOne.apply(x).sum(), _tensor((2, 2)))
    assert "analytic d(out)/d(in) = 2.1" in str(info.value)


def test_non_finite_input_is_reported_not_compared():
    x = tl.Tensor(np.array([1.0, np.nan, 2.0]), requires_grad=True)
    expected = r"input 0 has 1 non-finite value\(s\), the first nan at element \(1,\)"
    with pytest.raises(tl.GradcheckError, match=expected):
        tl.gradcheck(lambda x: x * 2, x)


def test_non_finite_output_is_reported_not_compared():
    x = tl.Tensor(np.array([1.0, -1.0]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(tl.GradcheckError, match=r"output of fn .* non-finite"):
        tl.gradcheck(lambda x: x.log(), x)


def test_output_turning_non_finite_under_perturbation_is_reported():
    x = tl.Tensor(np.array([0.5, 1e-7]), requires_grad=True)
    with np.errstate(invalid="ignore"), pytest.raises(tl.GradcheckError, match=r"element \(1,\) - eps"):
        tl.gradcheck(lambda x: x.sqrt(), x, eps=1e-6)


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad=True"):
        tl.gradcheck(lambda x: x * 2, tl.Tensor([1.0]))


def test_function_that_does_not_depend_on_the_input_has_zero_jacobian():
    assert tl.gradcheck(lambda x: tl.Tensor(np.ones(2)) * 3, _tensor((2,)))
