import os

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, settings

import tinygrad_lr as tl

# scikit-learn's check_array_api_input (in test_estimators.py) runs only with SciPy's array API switch on, and
# SciPy reads it once, when first imported: set before any test module imports scikit-learn
os.environ.setdefault("SCIPY_ARRAY_API", "1")

settings.register_profile("default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None)
# for mutation testing (HYPOTHESIS_PROFILE=mutation mutmut run): the same few examples every time, so that each
# of thousands of mutants costs seconds; a mutant these miss may be killed with more examples (the rate is a floor)
# (and a failure is not shrunk: a mutant needs only to be caught, and shrinking a failure may take minutes)
settings.register_profile(
    "mutation",
    max_examples=10,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def figures(monkeypatch):
    """The figures `tinygrad-lr fit` draws, by function name, recorded as it draws them."""
    drawn = {}
    for name in ("plot_fit", "plot_excess_loss"):
        original = getattr(tl.plot, name)

        def record(*args, _original=original, _name=name, **kwargs):
            drawn[_name] = _original(*args, **kwargs)
            return drawn[_name]

        monkeypatch.setattr(tl.plot, name, record)
    return drawn


@pytest.fixture
def disk_full_after(monkeypatch):
    """`disk_full_after(k)`: from then on, writing an .npz member puts k of them in the file, then half a
    member's header, then fails as a full disk does (OSError); `monkeypatch.undo()` ends it. It returns
    the list of the members written (to check that the write did stop midway)."""

    def after(members: int) -> list:
        real_write_array, written = np.lib.format.write_array, []

        def crash_midway(file, array, **kwargs):
            if len(written) == members:
                file.write(b"\x93NUMPY half")
                raise OSError("disk full")
            written.append(array)
            real_write_array(file, array, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", crash_midway)
        return written

    return after
