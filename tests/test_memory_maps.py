"""Memory-mapped data: read a block at a time, with the results of the same rows in memory."""

import ctypes
import mmap
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tinygrad_lr as tl
from tests.processes import child_env
from tests.strategies import MOMENTS_FITS
from tests.test_moments import _fit_beside_run_eagerly, _offset_scaled_data
from tinygrad_lr import blockwise

BLOCK = 64  # rows per block in these tests, so that a few hundred rows make many blocks


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(blockwise, "BLOCK_ROWS", BLOCK)


def _data(n=1000, d=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 2.0
    y = X @ np.arange(1.0, d + 1) - 4.0 + 0.1 * rng.normal(size=n)
    return X.astype(dtype), y.astype(dtype)


def _on_disk(tmp_path, *arrays):
    """Each array saved as .npy and opened again as a read-only memory map."""
    maps = []
    for i, array in enumerate(arrays):
        np.save(tmp_path / f"{i}.npy", array)
        maps.append(np.load(tmp_path / f"{i}.npy", mmap_mode="r"))
    return maps


def _model(d=3, dtype=np.float64, optimizer=None, **compile_kwargs):
    model = tl.nn.Sequential([tl.nn.Linear(d, 1, seed=0, dtype=dtype)])
    model.compile(optimizer=optimizer or tl.optim.SGD(lr=0.05), **compile_kwargs)
    return model


def test_a_memory_map_is_recognised_and_a_plain_array_is_not(tmp_path):
    (Xm,) = _on_disk(tmp_path, np.ones((4, 2)))
    assert tl.checks.is_memory_map(Xm) and tl.checks.is_memory_map(Xm[1:3])
    assert not tl.checks.is_memory_map(np.ones((4, 2)))
    assert not tl.checks.is_dask_array(Xm)


@given(st.integers(1, 300), st.integers(1, 100), st.sampled_from([np.float32, np.float64]))
def test_unshuffled_batches_are_those_of_the_same_rows_in_memory(n, batch_size, dtype):
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=(n, 2)), rng.normal(size=n)
    got = list(blockwise.batches(x, y, batch_size, dtype))
    want = [(x[i].astype(dtype), y[i].astype(dtype)[:, None]) for i in tl.data.batch_indices(n, batch_size)]
    assert len(got) == len(want)
    for (xb, yb), (xw, yw) in zip(got, want):
        if batch_size > BLOCK:  # handed on unread, to be summed a block at a time
            assert xb.shape[0] == len(xw)
        else:
            assert xb.dtype == dtype and np.array_equal(xb, xw) and np.array_equal(yb, yw)


@given(st.integers(1, 400), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_a_shuffled_epoch_visits_every_row_once_from_its_seed(n, batch_size, seed):
    x = np.arange(n, dtype=np.float64)
    first = [b.ravel() for b, _ in blockwise.batches(x, x, batch_size, np.float64, True, np.random.default_rng(seed))]
    again = [b.ravel() for b, _ in blockwise.batches(x, x, batch_size, np.float64, True, np.random.default_rng(seed))]
    rows = np.concatenate(first)
    assert sorted(rows.tolist()) == list(range(n))
    assert len(first) == -(-n // batch_size)  # a block holds whole batches: as many steps as in memory
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    # rows stay inside their block: the shuffle buffer never holds more than one block
    block_rows = batch_size * max(1, BLOCK // batch_size)
    for batch in first:
        assert len(set((batch // block_rows).tolist())) == 1


def test_shuffled_order_changes_with_the_seed():
    x = np.arange(1000, dtype=np.float64)

    def order(seed):
        return np.concatenate(
            [b.ravel() for b, _ in blockwise.batches(x, x, 10, np.float64, True, np.random.default_rng(seed))]
        )

    assert not np.array_equal(order(1), order(2))
    assert not np.array_equal(order(1), x)


@pytest.mark.parametrize("batch_size", [16, 50, 64, 100])
def test_unshuffled_mini_batch_fit_is_identical_to_memory(tmp_path, batch_size):
    X, y = _data()
    Xm, ym = _on_disk(tmp_path, X, y)
    in_memory, mapped = _model(metrics=["mae"], l2=0.01), _model(metrics=["mae"], l2=0.01)
    kwargs = {"epochs": 3, "batch_size": batch_size, "shuffle": False, "verbose": 0, "validation_split": 0.25}
    want = in_memory.fit(X, y, **kwargs).history
    got = mapped.fit(Xm, ym, **kwargs).history
    for p, q in zip(in_memory.get_weights(), mapped.get_weights()):
        if batch_size <= BLOCK:
            assert np.array_equal(p, q)
        else:  # a batch of several blocks: its gradient summed block by block, in float64
            np.testing.assert_allclose(p, q, rtol=1e-12)
    assert want.keys() == got.keys() == {"loss", "mae", "val_loss", "val_mae"}
    for key in want:
        np.testing.assert_allclose(want[key], got[key], rtol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("optimizer", [lambda: tl.optim.SGD(lr=0.05), lambda: tl.optim.Adam(lr=0.1)])
def test_full_batch_fit_follows_the_in_memory_iterates(tmp_path, dtype, rtol, optimizer):
    X, y = _data(dtype=dtype)
    Xm, ym = _on_disk(tmp_path, X, y)
    in_memory, mapped = _model(dtype=dtype, optimizer=optimizer()), _model(dtype=dtype, optimizer=optimizer())
    for _ in range(10):  # the iterates, step by step
        in_memory.fit(X, y, epochs=1, batch_size=len(X), verbose=0)
        mapped.fit(Xm, ym, epochs=1, batch_size=None, verbose=0)  # None: the full batch, a block at a time
        for p, q in zip(in_memory.get_weights(), mapped.get_weights()):
            np.testing.assert_allclose(q, p, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize("mapped", ["x", "y"])
def test_either_array_read_in_blocks_makes_the_default_batch_the_full_one(tmp_path, mapped):
    X, y = _data(n=100)
    Xm, ym = _on_disk(tmp_path, X, y)
    data = (Xm, y) if mapped == "x" else (X, ym)
    model, full = _model(), _model()
    history = model.fit(*data, epochs=3, batch_size=None, verbose=0)
    full.fit(X, y, epochs=3, batch_size=len(X), verbose=0)
    for p, q in zip(full.get_weights(), model.get_weights()):
        np.testing.assert_allclose(q, p, rtol=1e-12)
    assert len(history.history["loss"]) == 3


def test_arrays_in_memory_are_shuffled_as_one_permutation_not_in_blocks():
    """In memory, an epoch's batches follow `tl.data.batch_indices` (one permutation of all the rows),
    not the shuffle buffer of a memory map's blocks."""
    X, y = _data(n=300)
    model, by_hand = _model(), _model()
    model.fit(X, y, epochs=2, batch_size=50, seed=3, verbose=0)
    layer, rng = by_hand.layers[0], np.random.default_rng(3)
    opt = tl.optim.SGD(layer.parameters(), lr=0.05)
    for _ in range(2):
        for index in tl.data.batch_indices(len(X), 50, shuffle=True, rng=rng):
            opt.zero_grad()
            tl.losses.mse(layer(tl.Tensor(X[index])), y[index]).backward()
            opt.step()
    for p, q in zip(by_hand.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(q, p)


@pytest.mark.parametrize("mapped", ["x", "y"])
def test_one_array_read_in_blocks_makes_the_pair_stream_as_two_would(tmp_path, mapped):
    X, y = _data(n=300)
    Xm, ym = _on_disk(tmp_path, X, y)
    one, both = _model(), _model()
    one.fit(*((Xm, y) if mapped == "x" else (X, ym)), epochs=2, batch_size=50, seed=3, verbose=0)
    both.fit(Xm, ym, epochs=2, batch_size=50, seed=3, verbose=0)
    for p, q in zip(both.get_weights(), one.get_weights()):
        np.testing.assert_array_equal(q, p)


def test_a_shuffled_memory_map_fit_takes_the_batches_of_the_seeded_shuffle_buffer(tmp_path):
    X, y = _data(n=300)
    Xm, ym = _on_disk(tmp_path, X, y)
    model, by_hand = _model(), _model()
    model.fit(Xm, ym, epochs=2, batch_size=50, seed=3, verbose=0)
    layer, rng = by_hand.layers[0], np.random.default_rng(3)
    opt = tl.optim.SGD(layer.parameters(), lr=0.05)
    for _ in range(2):
        for xb, yb in blockwise.batches(X, y.reshape(-1, 1), 50, np.float64, True, rng):
            opt.zero_grad()
            tl.losses.mse(layer(tl.Tensor(xb)), yb).backward()
            opt.step()
    for p, q in zip(by_hand.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(q, p)


def test_shuffled_mini_batches_reach_the_ridge_optimum(tmp_path):
    X, y = _data(n=2000)
    Xm, ym = _on_disk(tmp_path, X, y)
    model = _model(optimizer=tl.optim.SGD(lr=0.02), l2=0.01)
    model.fit(Xm, ym, epochs=30, batch_size=32, seed=0, verbose=0)
    coef, intercept = tl.solvers.ridge(X, y, 0.01)
    np.testing.assert_allclose(model.layers[0].weight.data[:, 0], coef, atol=0.02)
    np.testing.assert_allclose(model.layers[0].bias.data[0], intercept, atol=0.05)


def test_the_same_seed_repeats_a_shuffled_memory_map_fit_exactly(tmp_path):
    Xm, ym = _on_disk(tmp_path, *_data())
    runs = []
    for _ in range(2):
        model = _model()
        model.fit(Xm, ym, epochs=2, batch_size=20, seed=7, verbose=0)
        runs.append(model.get_weights())
    assert all(np.array_equal(p, q) for p, q in zip(*runs))


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_ols_and_ridge_on_a_memory_map_equal_the_in_memory_answer(tmp_path, l2):
    X, y = _data(n=700)
    Y = np.column_stack([y, -2 * y + X[:, 0]])
    Xm, ym, Ym = _on_disk(tmp_path, X, y, Y)
    for target, mapped in ((y, ym), (Y, Ym)):
        for fit_intercept in (True, False):
            want = tl.solvers.ridge(X, target, l2, fit_intercept=fit_intercept)
            got = tl.solvers.ridge(Xm, mapped, l2, fit_intercept=fit_intercept)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12)


def test_ols_on_fewer_rows_than_columns_per_block_still_solves(tmp_path, monkeypatch):
    monkeypatch.setattr(blockwise, "BLOCK_ROWS", 2)  # each block of [1 X y] is wider than tall
    X, y = _data(n=41, d=4)
    Xm, ym = _on_disk(tmp_path, X, y)
    want, got = tl.solvers.ols(X, y), tl.solvers.ols(Xm, ym)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-10)


def test_predict_and_evaluate_on_a_memory_map_match_memory(tmp_path):
    X, y = _data()
    Xm, ym = _on_disk(tmp_path, X, y)
    model = _model(metrics=["mae"], l2=0.1)
    model.fit(X, y, epochs=2, verbose=0)
    assert np.array_equal(model.predict(Xm), model.predict(X))
    assert np.array_equal(model.predict(Xm, batch_size=10), model.predict(X))
    want, got = model.evaluate(X, y), model.evaluate(Xm, ym)
    assert want.keys() == got.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12)


def test_non_finite_data_found_mid_stream_is_named_by_block_and_row(tmp_path):
    X, y = _data()
    X[517, 2] = np.nan
    Xm, ym = _on_disk(tmp_path, X, y)
    model = _model()
    with pytest.raises(
        ValueError, match=r"fit: x: block 8 \(rows 512 to 575\) has a non-finite value, nan, at row 517, column 2"
    ):
        model.fit(Xm, ym, epochs=1, batch_size=32, shuffle=False, verbose=0)
    assert len(model.history.epoch) == 0  # the epoch never ended; the error says where it stopped
    with pytest.raises(ValueError, match=r"predict: x: block 8 .* at row 517, column 2"):
        model.predict(Xm)
    with pytest.raises(ValueError, match=r"ols: X: block 8 .* at row 517, column 2"):
        tl.solvers.ols(Xm, ym)


def test_a_value_beyond_the_model_dtype_is_named_by_block_and_row(tmp_path):
    X, y = _data()
    y[70] = 1e300
    Xm, ym = _on_disk(tmp_path, X, y)
    with pytest.raises(
        ValueError,
        match=r"fit: y: block 1 \(rows 64 to 127\) has a value beyond float32, 1e\+300, at row 70, column 0; rescale",
    ):
        _model(dtype=np.float32).fit(Xm, ym, epochs=1, verbose=0)


def test_shapes_are_checked_without_reading_the_rows(tmp_path):
    X, y = _data()
    Xm, ym, strings = _on_disk(tmp_path, X, y[:-1], np.array([["a"]]))
    with pytest.raises(ValueError, match=r"x has 1000 samples .* but y has 999"):
        _model().fit(Xm, ym, verbose=0)
    with pytest.raises(
        ValueError, match="x has shape \\(1000, 3\\), 3 feature\\(s\\) per sample, but the model takes 2"
    ):
        _model(d=2).fit(Xm, ym[:1], verbose=0)
    with pytest.raises(TypeError, match="fit: x must hold real numbers"):
        _model(d=1).fit(strings, np.ones(1), verbose=0)


def test_callbacks_and_the_progress_line_work_on_a_memory_map(tmp_path, capsys):
    Xm, ym = _on_disk(tmp_path, *_data())
    model = _model(optimizer=tl.optim.SGD(lr=0.01))
    stop = tl.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9)  # stops after the 2nd epoch
    history = model.fit(Xm, ym, epochs=5, batch_size=100, verbose=1, validation_split=0.2, callbacks=[stop])
    out = capsys.readouterr().out
    assert history.epoch == [0, 1]
    assert "Epoch 1/5" in out and "8/8 [==============================]" in out and "val_loss:" in out


def test_divergence_on_a_memory_map_puts_back_the_last_finite_weights(tmp_path):
    X, y = _data()
    Xm, ym = _on_disk(tmp_path, 1e3 * X, y)
    model = _model(optimizer=tl.optim.SGD(lr=1.0))
    with pytest.raises(tl.TrainingDivergedError) as caught:
        model.fit(Xm, ym, epochs=50, batch_size=None, verbose=0)
    assert caught.value.epoch is not None and caught.value.batch == 1
    assert "standardise the features" in str(caught.value)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_anonymous_memory_stays_flat_on_a_memory_map_of_many_blocks(tmp_path):
    """RssAnon (not RSS: the file's pages are page cache) while streaming 0.5M and 4M rows."""
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import tinygrad_lr as tl

        def anon():
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")) * 1024

        class Peak(tl.callbacks.Callback):
            peak = 0
            def on_batch_end(self, batch, logs=None):
                Peak.peak = max(Peak.peak, anon())

        folder = sys.argv[1]
        for n in (500_000, 4_000_000):
            path = f"{folder}/x{n}.npy"
            x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 10))
            for start in range(0, n, 500_000):  # written a block at a time, so writing stays flat too
                x[start : start + 500_000] = 1.0 / (1 + np.arange(10))
            x.flush()
            del x
            x = np.load(path, mmap_mode="r")
            y = x[:, 0]
            model = tl.nn.Sequential([tl.nn.Linear(10, 1, seed=0)])
            model.compile(optimizer=tl.optim.SGD(lr=0.01))
            before = anon()
            model.fit(x, y, epochs=1, batch_size=8192, verbose=0, callbacks=[Peak()])  # shuffled blocks
            model.fit(x, y, epochs=1, batch_size=None, verbose=0, callbacks=[Peak()])  # full batch
            Peak.peak = max(Peak.peak, anon())
            print(n, x.nbytes, before, Peak.peak, flush=True)
            Peak.peak = 0
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=child_env(), timeout=120
    )
    assert out.returncode == 0, out.stderr
    (_, small_bytes, small_before, small_peak), (_, big_bytes, big_before, big_peak) = (
        [int(v) for v in line.split()] for line in out.stdout.split("\n") if line
    )
    assert big_bytes == 8 * small_bytes == 160_000_000
    growth_small, growth_big = small_peak - small_before, big_peak - big_before
    assert growth_big < 48 * 2**20, growth_big  # a few blocks' worth, far below the 160 MB read
    assert growth_big - growth_small < 8 * 2**20, (growth_small, growth_big)  # flat in N


# ----- reading ahead: the same batches and errors, from a thread, with the kernel reading ahead -----


def _read_ahead_threads():
    return [thread for thread in threading.enumerate() if thread.name == "tinygrad_lr read-ahead"]


@given(st.integers(1, 400), st.integers(1, 64), st.integers(0, 2**32 - 1))
def test_shuffled_batches_are_the_seeded_shuffle_buffer_drawn_in_turn(n, batch_size, seed):
    """The order is a contract: the block order, then each block's rows, drawn in turn from one generator."""
    x = np.arange(n, dtype=np.float64)
    got = [b.ravel() for b, _ in blockwise.batches(x, x, batch_size, np.float64, True, np.random.default_rng(seed))]
    rng = np.random.default_rng(seed)
    block_rows = batch_size * max(1, BLOCK // batch_size)
    want = []
    for number in rng.permutation(-(-n // block_rows)):
        block = x[number * block_rows : (number + 1) * block_rows][
            rng.permutation(min(n - number * block_rows, block_rows))
        ]
        want += [block[i : i + batch_size] for i in range(0, len(block), batch_size)]
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))


def test_a_non_finite_value_in_a_shuffled_block_is_named_by_its_row_in_the_file(tmp_path):
    X, y = _data()
    X[517, 2], X[560, 0] = np.nan, np.inf  # two in block 8: the first in the file is named, wherever shuffled
    Xm, ym = _on_disk(tmp_path, X, y)
    model = _model()
    with pytest.raises(
        ValueError, match=r"fit: x: block 8 \(rows 512 to 575\) has a non-finite value, nan, at row 517"
    ):
        model.fit(Xm, ym, epochs=1, batch_size=32, shuffle=True, seed=3, verbose=0)
    assert not _read_ahead_threads()


def test_the_steps_before_a_bad_block_are_taken_and_the_error_comes_in_its_turn(tmp_path):
    X, y = _data()
    X[700, 1] = np.nan  # block 10 of 16
    Xm, ym = _on_disk(tmp_path, X, y)
    seen = []

    class Count(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    with pytest.raises(ValueError, match=r"block 10 .* at row 700"):
        _model().fit(Xm, ym, epochs=1, batch_size=32, shuffle=False, verbose=0, callbacks=[Count()])
    assert seen == list(range(20))  # blocks 0 to 9, two batches each: read ahead, but raised in order


def test_finite_values_whose_sum_overflows_are_not_an_error():
    big = np.full((4, 2), 3e38, dtype=np.float32)  # each finite; their sum is inf in float32
    assert np.array_equal(blockwise.read_block("fit: x", big, 0, 4, np.float32, 0), big)
    rows = np.array([3, 1, 0, 2])
    values = np.arange(8.0).reshape(4, 2)
    assert np.array_equal(blockwise.read_block("fit: x", values, 0, 4, np.float32, 0, rows=rows), values[rows])


def test_reading_ahead_hands_on_items_and_errors_in_order_and_stops_its_thread():
    closed = []

    def items(fail_at=None):
        try:
            for i in range(10):
                if i == fail_at:
                    raise ValueError(f"item {i}")
                yield i
        finally:
            closed.append(True)

    assert list(blockwise.ahead(items())) == list(range(10))
    got = []
    with pytest.raises(ValueError, match="item 4"):
        for item in blockwise.ahead(items(fail_at=4)):
            got.append(item)
    assert got == [0, 1, 2, 3]
    early = blockwise.ahead(items())
    assert next(early) == 0
    early.close()  # the consumer stops early: the thread ends and the producer is closed
    assert closed == [True] * 3 and not _read_ahead_threads()


def test_no_read_ahead_thread_outlives_a_fit_stopped_mid_epoch(tmp_path):
    Xm, ym = _on_disk(tmp_path, *_data())

    class StopAtOnce(tl.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    model = _model()
    history = model.fit(Xm, ym, epochs=3, batch_size=16, verbose=0, callbacks=[StopAtOnce()])
    assert history.epoch == [0] and not _read_ahead_threads()


def test_the_kernel_is_asked_to_read_the_next_blocks_ahead(tmp_path):
    """`will_need` starts reading a memory map's rows into the page cache (mincore shows them arriving)."""
    path = tmp_path / "x.npy"
    np.save(path, np.ones((1 << 16, 16), dtype=np.float32))  # 4 MiB
    with open(path, "rb") as file:
        os.fsync(file.fileno())
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    x = np.load(path, mmap_mode="r")
    rows = slice(1 << 14, 1 << 15)  # 1 MiB in the middle
    if _cached(path, x, rows) > 0.5:
        pytest.skip(f"{path} stays in the page cache (a tmpfs?): nothing to read ahead")
    blockwise.will_need(x, rows.start, rows.stop)
    deadline = time.monotonic() + 10
    while _cached(path, x, rows) < 1.0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _cached(path, x, rows) == 1.0
    assert _cached(path, x, slice(0, 1 << 12)) < 0.5  # not the whole file


def _cached(path, x, rows):
    """The share of the pages of x[rows] (a memory map of the .npy file at `path`) in the page cache."""
    mincore = ctypes.CDLL(None, use_errno=True).mincore
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    with open(path, "rb") as file, mmap.mmap(file.fileno(), size, prot=mmap.PROT_READ) as mapped:
        view = np.frombuffer(mapped, dtype=np.uint8)
        pages = np.zeros(-(-size // mmap.PAGESIZE), dtype=np.uint8)
        assert mincore(view.ctypes.data, size, pages.ctypes.data) == 0
        del view
    first = x.offset + rows.start * x.strides[0]
    return float(
        np.mean(
            pages[first // mmap.PAGESIZE : -(-(first + (rows.stop - rows.start) * x.strides[0]) // mmap.PAGESIZE)] & 1
        )
    )


def test_bad_validation_rows_in_a_memory_map_are_named_as_validation(tmp_path):
    X, y = _data(n=100)
    X_val = X[:20].copy()
    X_val[5, 1] = np.nan
    Xm, ym, X_val_m, y_val_m = _on_disk(tmp_path, X, y, X_val, y[:20])
    model = _model()
    with pytest.raises(ValueError) as error:
        model.fit(Xm, ym, epochs=1, batch_size=None, validation_data=(X_val_m, y_val_m), verbose=0)
    assert str(error.value) == (
        "fit (validation): x: block 0 (rows 0 to 19) has a non-finite value, nan, at row 5, column 1; "
        "remove or impute such samples first"
    )


@pytest.mark.parametrize(("batch_size", "step"), [(BLOCK, "captured"), (BLOCK + 1, "eager")])
def test_a_memory_maps_batches_are_captured_when_read_into_memory_and_summed_when_larger_than_a_block(
    tmp_path, batch_size, step
):
    X, y = _data(n=300)
    mapped = _model().fit(*_on_disk(tmp_path, X, y), epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
    in_memory = _model().fit(X, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
    assert mapped.step == step
    if step == "eager":
        assert mapped.step_reason == "batches of memory-mapped data, each summed a block at a time"
    np.testing.assert_allclose(mapped.history["loss"], in_memory.history["loss"], rtol=1e-12)


# ----- sample weights, read with their rows -----


@given(st.integers(1, 300), st.integers(1, 100), st.booleans(), st.integers(0, 2**32 - 1))
def test_each_batch_carries_the_weights_of_its_own_rows(n, batch_size, shuffle, seed):
    x = np.arange(n, dtype=np.float64)
    w = 0.5 * x + 1.0  # a row's weight says which row it is
    rng = np.random.default_rng(seed)
    plain = list(blockwise.batches(x, x, batch_size, np.float64, shuffle, np.random.default_rng(seed)))
    weighted = list(blockwise.batches(x, x, batch_size, np.float32, shuffle, rng, w=w))
    assert len(weighted) == len(plain)
    read = batch_size <= BLOCK  # (a larger batch is handed on as slices of the arrays, weights included)
    for (xb, _), (xw, _, wb) in zip(plain, weighted):
        assert wb.dtype == (np.float32 if read else np.float64) and wb.shape == (len(xw),)
        np.testing.assert_array_equal(xw.ravel(), xb.ravel())  # the weights change no row, nor their order
        np.testing.assert_array_equal(wb, (0.5 * xw.ravel() + 1.0).astype(wb.dtype))


def _weighted(n, seed=1):
    """Weights that matter: a wide spread, and whole blocks of zeros."""
    w = np.random.default_rng(seed).uniform(0.0, 3.0, size=n)
    w[BLOCK : 2 * BLOCK] = 0.0
    return w


@pytest.mark.parametrize("batch_size", [None, 50, BLOCK + 1])  # full, read into memory, summed a block at a time
def test_a_weighted_fit_on_a_memory_map_is_the_weighted_fit_in_memory(tmp_path, batch_size):
    X, y = _data(n=500)
    w = _weighted(len(X))
    Xm, ym = _on_disk(tmp_path, X, y)
    kwargs = {"epochs": 3, "shuffle": False, "verbose": 0, "validation_split": 0.2, "sample_weight": w}
    in_memory, mapped = _model(metrics=["mae"], l2=0.01), _model(metrics=["mae"], l2=0.01)
    want = in_memory.fit(X, y, batch_size=batch_size or len(X), **kwargs).history
    got = mapped.fit(Xm, ym, batch_size=batch_size, **kwargs).history
    for key in ("loss", "mae", "val_loss", "val_mae"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12)
    for p, q in zip(in_memory.get_weights(), mapped.get_weights()):
        np.testing.assert_allclose(q, p, rtol=1e-12)
    unweighted = _model(metrics=["mae"], l2=0.01)
    assert unweighted.fit(Xm, ym, batch_size=batch_size, **{**kwargs, "sample_weight": None}).history != got
    for key, value in in_memory.evaluate(X, y, sample_weight=w).items():
        assert mapped.evaluate(Xm, ym, sample_weight=w)[key] == pytest.approx(value, rel=1e-12)


def test_a_shuffled_weighted_fit_on_a_memory_map_reaches_the_weighted_ridge_optimum(tmp_path):
    X, y = _data(n=2000)
    y = y + np.where(np.arange(len(y)) % 3 == 0, 2.0 * X[:, 0], 0.0)  # rows the weights must discount
    w = np.where(np.arange(len(y)) % 3 == 0, 0.01, 1.0)
    Xm, ym = _on_disk(tmp_path, X, y)
    model = _model(optimizer=tl.optim.SGD(lr=0.02), l2=0.01)
    model.fit(Xm, ym, epochs=40, batch_size=32, seed=0, verbose=0, sample_weight=w)
    coef, intercept = tl.solvers.ridge(X, y, 0.01, sample_weight=w)
    assert np.max(np.abs(coef - tl.solvers.ridge(X, y, 0.01)[0])) > 0.1  # the weights move the optimum
    np.testing.assert_allclose(model.layers[0].weight.data[:, 0], coef, atol=0.03)
    np.testing.assert_allclose(model.layers[0].bias.data[0], intercept, atol=0.06)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_weighted_ols_and_ridge_on_a_memory_map_equal_the_in_memory_answer(tmp_path, l2):
    X, y = _data(n=700)
    Y = np.column_stack([y, -2 * y + X[:, 0]])
    w = _weighted(len(X))
    Xm, ym, Ym = _on_disk(tmp_path, X, y, Y)
    for target, mapped in ((y, ym), (Y, Ym)):
        for fit_intercept in (True, False):
            want = tl.solvers.ridge(X, target, l2, fit_intercept=fit_intercept, sample_weight=w)
            got = tl.solvers.ridge(Xm, mapped, l2, fit_intercept=fit_intercept, sample_weight=w)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12)
    assert not np.allclose(tl.solvers.ols(Xm, ym, sample_weight=w)[0], tl.solvers.ols(Xm, ym)[0], rtol=1e-6)
    with pytest.raises(ValueError, match=r"ols: sample_weight must be >= 0; sample 3 has weight -1.0"):
        tl.solvers.ols(Xm, ym, sample_weight=np.where(np.arange(len(X)) == 3, -1.0, 1.0))


def test_weights_summing_below_one_or_zero_over_whole_blocks_solve_as_in_memory(tmp_path):
    # blocks of different means merged to one origin whatever the weights' scale; blocks of no weight count for nothing
    X, y = _data(n=700)
    X = X + np.linspace(0.0, 5.0, len(X))[:, None]
    Xm, ym = _on_disk(tmp_path, X, y)
    for w in (_weighted(len(X)) * 1e-5, np.where(np.arange(len(X)) < 3 * BLOCK, 0.0, _weighted(len(X)))):
        want = tl.solvers.ols(X, y, sample_weight=w)
        got = tl.solvers.ols(Xm, ym, sample_weight=w)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
        assert got[1] == pytest.approx(want[1], rel=1e-10)


# ----- full batches from the moments: the file read once for the whole fit -----


def test_a_full_batch_fit_from_the_moments_reads_each_block_once(tmp_path, monkeypatch):
    X, y = _data(n=1000)
    Xm, ym = _on_disk(tmp_path, X, y)
    read = []
    original = blockwise.read_block

    def counted(what, array, start, stop, *args, **kwargs):
        read.append((what, start))
        return original(what, array, start, stop, *args, **kwargs)

    monkeypatch.setattr(blockwise, "read_block", counted)
    runs = []
    for run_eagerly in (False, True):
        model = _model(l2=0.01, metrics=["mse", "r2"], run_eagerly=run_eagerly)
        read.clear()
        stop = tl.callbacks.GradientNormStop(tol=1e-12)  # (never reached: its gradient each epoch)
        history = model.fit(Xm, ym, epochs=30, batch_size=None, validation_split=0.2, verbose=0, callbacks=[stop])
        runs.append((history, model.get_weights(), list(read)))
    (fast, fast_weights, fast_read), (eager, eager_weights, eager_read) = runs
    assert fast.step == "moments" and eager.step == "eager"
    blocks = -(-800 // BLOCK) + -(-200 // BLOCK)  # the training rows' blocks, then the validation rows'
    assert sorted(fast_read) == sorted(set(fast_read)) and len(fast_read) == 2 * blocks  # x and y, each block once
    assert len(eager_read) > 30 * len(fast_read)
    for key in eager.history:
        np.testing.assert_allclose(fast.history[key], eager.history[key], rtol=1e-9)
    for a, b in zip(fast_weights, eager_weights):
        np.testing.assert_allclose(a, b, rtol=1e-9)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    **MOMENTS_FITS,
    weighted=st.booleans(),
)
@example(offset=0.0, scale=1.0, noise=1.0, l2=0.01, use_adam=False, weighted=True)
def test_memory_mapped_full_batch_fit_from_the_moments_equals_run_eagerly_or_is_not_taken(
    tmp_path, offset, scale, noise, l2, use_adam, weighted
):
    x, y = _offset_scaled_data(1000, offset, scale, noise)
    fast = _fit_beside_run_eagerly(*_on_disk(tmp_path, x, y), l2, use_adam, weighted)
    if (offset, scale, noise) == (0.0, 1.0, 1.0):
        assert fast.step == "moments"
