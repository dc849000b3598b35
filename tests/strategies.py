"""Hypothesis strategies shared by every property test: shapes, dtypes and values away from kinks."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = st.sampled_from([np.float32, np.float64])

# shapes from 0-d to 3-d, with size-1 axes common
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
# two shapes that broadcast together: rank mismatch and stretched size-1 axes included
broadcastable_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)

# value domains: each op is drawn where it is smooth and its finite differences are accurate
_DOMAINS = {
    "any": st.floats(-2.0, 2.0),
    "positive": st.floats(0.5, 2.0),  # log, sqrt, a base of a real power
    "nonzero": st.floats(0.5, 2.0).flatmap(lambda v: st.sampled_from([v, -v])),  # divisors, |x|, relu
    # maximum: the two sides come from interleaved grids, so they never tie
    "grid": st.integers(-4, 4).map(lambda k: k / 2),
    "grid_offset": st.integers(-4, 4).map(lambda k: k / 2 + 0.25),
}


def arrays(shape, domain: str = "any", dtype=np.float64):
    """An array of `shape` with values drawn from one of the named domains."""
    return hnp.arrays(dtype, shape, elements=_DOMAINS[domain].map(dtype), fill=st.nothing())


@st.composite
def axis_args(draw, ndim: int):
    """`axis` for a reduction over `ndim` axes: None, an int (maybe negative) or a tuple."""
    if ndim == 0:
        return None
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        return None
    if choice == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return draw(hnp.valid_tuple_axes(ndim, min_size=1))


@st.composite
def matmul_shapes(draw):
    """Shapes of a @ b with each operand 1-D or 2-D (and now and then a batch of matrices)."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    left = draw(st.sampled_from([(k,), (n, k), (2, n, k)]))
    right = draw(st.sampled_from([(k,), (k, m)]))
    return left, right
