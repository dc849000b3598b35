"""Dask arrays, on a two-process `dask.distributed` cluster: the in-memory results, computed where the chunks live."""

import multiprocessing
import os
import signal
import subprocess
import sys
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

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

CHUNK = 250


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def _data(n=1000, d=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 2.0
    y = X @ np.arange(1.0, d + 1) - 4.0 + 0.1 * rng.normal(size=n)
    return X.astype(dtype), y.astype(dtype)


def _chunked(X, y, chunk=CHUNK):
    return da.from_array(X, chunks=(chunk, -1)), da.from_array(y, chunks=chunk)


def _model(d=3, dtype=np.float64, optimizer=None, **compile_kwargs):
    model = tl.nn.Sequential([tl.nn.Linear(d, 1, seed=0, dtype=dtype)])
    model.compile(optimizer=optimizer or tl.optim.SGD(lr=0.05), **compile_kwargs)
    return model


def _run_with_timeout(seconds, fn):
    """fn() in a thread; its result, or what it raised; a hang fails the test instead of the suite."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    return outcome


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("optimizer", [lambda: tl.optim.SGD(lr=0.05), lambda: tl.optim.Adam(lr=0.1)])
def test_full_batch_follows_the_in_memory_iterates_on_the_cluster(client, dtype, rtol, optimizer):
    X, y = _data(dtype=dtype)
    Xd, yd = _chunked(X, y)
    in_memory = _model(dtype=dtype, optimizer=optimizer(), metrics=["mae"], l2=0.01)
    on_dask = _model(dtype=dtype, optimizer=optimizer(), metrics=["mae"], l2=0.01)
    for _ in range(6):  # the iterates, step by step
        want = in_memory.fit(X, y, epochs=1, batch_size=len(X), verbose=0).history
        got = on_dask.fit(Xd, yd, epochs=1, batch_size=None, verbose=0).history
        for p, q in zip(in_memory.get_weights(), on_dask.get_weights()):
            np.testing.assert_allclose(q, p, rtol=rtol, atol=rtol * 1e-3)
        for key in ("loss", "mae"):
            assert got[key][0] == pytest.approx(want[key][0], rel=rtol)


def test_full_batch_on_the_default_scheduler_too():
    import dask

    X, y = _data()
    in_memory, on_dask = _model(), _model()
    in_memory.fit(X, y, epochs=2, batch_size=len(X), verbose=0)
    with dask.config.set(scheduler="threads"):  # Dask's local scheduler, whatever client is active
        # (two epochs: too few for the moments' pass to pay off, so each step is summed on the chunks)
        history = on_dask.fit(*_chunked(X, y), epochs=2, batch_size=None, verbose=0)
    assert (history.step, history.step_reason) == ("eager", "batches of Dask data, each summed a block at a time")
    for p, q in zip(in_memory.get_weights(), on_dask.get_weights()):
        np.testing.assert_allclose(q, p, rtol=1e-12)


def test_mini_batches_in_order_follow_the_in_memory_ones(client):
    X, y = _data(n=600)
    in_memory, on_dask = _model(), _model()
    kwargs = {"epochs": 2, "batch_size": 200, "shuffle": False, "verbose": 0, "validation_split": 0.25}
    want = in_memory.fit(X, y, **kwargs).history
    got = on_dask.fit(*_chunked(X, y, chunk=150), **kwargs).history
    for p, q in zip(in_memory.get_weights(), on_dask.get_weights()):
        np.testing.assert_allclose(q, p, rtol=1e-12)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12)


def test_shuffled_mini_batches_are_contiguous_slices_in_the_seeded_order(client):
    """Shuffled, a Dask array's batches are contiguous slices in an order drawn from the seed
    (`blockwise.slices`); the same steps in memory agree."""
    X, y = _data(n=600)
    on_dask, by_hand = _model(), _model()
    on_dask.fit(*_chunked(X, y, chunk=150), epochs=2, batch_size=200, seed=5, verbose=0)
    layer, rng = by_hand.layers[0], np.random.default_rng(5)
    opt = tl.optim.SGD(layer.parameters(), lr=0.05)
    for _ in range(2):
        for start, stop in blockwise.slices(len(X), 200, True, rng):
            opt.zero_grad()
            tl.losses.mse(layer(tl.Tensor(X[start:stop])), y[start:stop]).backward()
            opt.step()
    for p, q in zip(by_hand.get_weights(), on_dask.get_weights()):
        np.testing.assert_allclose(q, p, rtol=1e-12)


def test_a_dask_y_with_x_in_memory_is_refused_and_changes_nothing(client):
    X, y = _data(n=600)
    _, yd = _chunked(X, y, chunk=150)
    model = _model()
    before = model.get_weights()
    with pytest.raises(TypeError, match="fit: x and y must both be Dask arrays"):
        model.fit(X, yd, epochs=1, batch_size=200, verbose=0)
    assert all(np.array_equal(p, q) for p, q in zip(before, model.get_weights()))


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_ols_and_ridge_on_the_cluster_equal_the_in_memory_answer(client, l2):
    X, y = _data(n=2000, d=4)
    Y = np.column_stack([y, X[:, 0] - y])
    Xd = da.from_array(X, chunks=(300, 2))  # chunked along the columns too: joined on the workers
    for target in (y, Y):
        td = da.from_array(target, chunks=(300, *target.shape[1:]))
        for fit_intercept in (True, False):
            want = tl.solvers.ridge(X, target, l2, fit_intercept=fit_intercept)
            got = tl.solvers.ridge(Xd, td, l2, fit_intercept=fit_intercept)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
            np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-12)


def test_predict_returns_a_lazy_dask_array_of_the_in_memory_predictions(client):
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=3, verbose=0)
    lazy = model.predict(da.from_array(X, chunks=(CHUNK, -1)))
    assert isinstance(lazy, da.Array) and lazy.shape == (len(X), 1) and lazy.chunks[0] == (CHUNK,) * 4
    weights = model.get_weights()
    model.fit(X, y, epochs=1, verbose=0)  # later training does not change what was predicted
    model.set_weights(weights)
    np.testing.assert_allclose(lazy.compute(), model.predict(X), rtol=1e-12)
    assert model.evaluate(*_chunked(X, y)) == pytest.approx(model.evaluate(X, y), rel=1e-12)


def _sent_since(client, since):
    """What the workers have sent since `since` (time.time()), one (to a worker, bytes, keys) per
    transfer they served: to another worker, or else to the client side (the client, or the scheduler
    gathering for it)."""

    def sent(since, dask_worker=None):
        return [
            (e["who"], e["total"], list(e["keys"])) for e in dask_worker.transfer_outgoing_log if e["start"] >= since
        ]

    logs = client.run(sent, since)
    return [(who in logs, size, keys) for log in logs.values() for who, size, keys in log]


def _persisted(n, d, chunk_rows, seed=0):
    """X (n, d) and y (n,), made on the workers from one table (the chunks of X and y with the same
    rows on the same worker, as data loaded there would be) and kept there."""
    xy = da.random.default_rng(seed).normal(size=(n, d + 1), chunks=(chunk_rows, -1)).persist()
    X, y = xy[:, :d].persist(), xy[:, d].persist()
    distributed.wait([X, y])
    return X, y


def test_a_step_moves_the_same_few_sums_whatever_the_rows_and_no_chunk(client):
    """Steps (with a validation part) and ols on 8 chunks of 12.5k rows, then of 50k: no array chunk
    (a tuple key) moves, to the client or between workers, and what moves does not grow with N.

    (How many results a worker sends in one transfer depends on where the scheduler put the chunks,
    which changes from run to run; what each result weighs does not.)"""
    d, steps, per_step, per_result = 5, 4, {}, {}
    for n in (100_000, 400_000):
        X, y = _persisted(n, d, n // 8)
        model = _model(d=d, optimizer=tl.optim.Adam(lr=0.1))
        since = time.time()  # from the first step: each chunk's task runs on the worker that holds the chunk
        model.fit(X, y, epochs=steps, batch_size=None, verbose=0, validation_split=0.1)
        tl.solvers.ols(X, y)
        sent = _sent_since(client, since)
        moved = [key for _, _, keys in sent for key in keys if isinstance(key, tuple)]
        assert not moved, (n, moved)  # a 1-D y reshaped per call, or a chunk sent to balance the load
        per_step[n] = sum(size for _, size, _ in sent) / steps
        per_result[n] = max(size / len(keys) for _, size, keys in sent)
        assert sum(size for to_worker, size, _ in sent if not to_worker) / steps < 1_000  # Sums, not rows
        assert np.isfinite(model.get_weights()[0]).all()
        del X, y
    assert 0 < per_step[400_000] < 5_000, per_step  # the 400k rows are 19 MB
    assert per_result[400_000] <= 1.1 * per_result[100_000] < 1_000, per_result


def test_a_step_pinned_to_a_worker_that_is_gone_is_made_again_unpinned(client, monkeypatch):
    X, y = _persisted(4000, 3, 500)
    gone = "tcp://127.0.0.1:9"  # no worker there: a task pinned to it would wait forever
    monkeypatch.setattr(client, "who_has", lambda arrays: {f.key: [gone] for f in client.futures_of(arrays)})
    monkeypatch.setattr(tl.dask_chunks, "PIN_CHECK_S", 0.2)
    model, in_memory = _model(), _model()
    outcome = _run_with_timeout(60, lambda: model.fit(X, y, epochs=2, batch_size=None, verbose=0))
    assert "error" not in outcome, outcome.get("error")
    in_memory.fit(X.compute(), y.compute(), epochs=2, batch_size=4000, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], in_memory.get_weights()[0], rtol=1e-12)


def test_a_one_feature_dask_x_trains_and_predicts_as_in_memory(client):
    X, y = _data(d=1)
    x = X[:, 0]
    in_memory, on_dask = _model(d=1), _model(d=1)
    in_memory.fit(x, y, epochs=3, batch_size=len(x), verbose=0)
    on_dask.fit(da.from_array(x, chunks=CHUNK), da.from_array(y, chunks=CHUNK), epochs=3, batch_size=None, verbose=0)
    np.testing.assert_allclose(on_dask.get_weights()[0], in_memory.get_weights()[0], rtol=1e-12)
    lazy = on_dask.predict(da.from_array(x, chunks=CHUNK))
    assert isinstance(lazy, da.Array) and lazy.shape == (len(x), 1)
    np.testing.assert_allclose(lazy.compute(), in_memory.predict(x), rtol=1e-12)
    with pytest.raises(ValueError, match=r"y has shape \(1000, 2\) but the model has 1 output\(s\)"):
        _model(d=1).fit(da.from_array(x, chunks=CHUNK), da.from_array(np.column_stack([y, y]), chunks=CHUNK))


def test_mismatched_chunks_and_mixed_kinds_are_refused_before_any_step(client):
    X, y = _data()
    model = _model()
    weights = model.get_weights()
    with pytest.raises(
        ValueError,
        match=r"x and y are chunked differently along the rows: x in chunks of \(250, 250, 250, 250\) rows, "
        r"y in chunks of \(300, 300, 300, 100\)",
    ):
        model.fit(da.from_array(X, chunks=(CHUNK, -1)), da.from_array(y, chunks=300), batch_size=None, verbose=0)
    with pytest.raises(TypeError, match=r"x and y must both be Dask arrays .* y is a ndarray"):
        model.fit(da.from_array(X, chunks=(CHUNK, -1)), y, batch_size=None, verbose=0)
    assert all(np.array_equal(p, q) for p, q in zip(weights, model.get_weights()))
    unknown = da.from_array(X, chunks=(CHUNK, -1))[da.from_array(y, chunks=CHUNK) > 0]
    with pytest.raises(ValueError, match=r"unknown chunk sizes .*compute_chunk_sizes"):
        model.fit(unknown, y, verbose=0)


def test_non_finite_values_on_a_chunk_are_named_by_chunk_and_row(client):
    X, y = _data()
    X[612, 1] = np.inf
    model = _model()
    message = r"fit: x: chunk 2 \(rows 500 to 749\) has a non-finite value, inf, at row 612, column 1"
    with pytest.raises(ValueError, match=message):
        model.fit(*_chunked(X, y), batch_size=None, verbose=0)
    with pytest.raises(ValueError, match=r"ols: X: chunk 2 .* at row 612, column 1"):
        tl.solvers.ols(*_chunked(X, y))
    with pytest.raises(ValueError, match=r"predict: x: chunk 2 .* at row 612, column 1"):
        model.predict(da.from_array(X, chunks=(CHUNK, -1))).compute()


def test_validation_split_callbacks_and_progress_line_on_dask(client, capsys):
    X, y = _data()
    model = _model(optimizer=tl.optim.SGD(lr=0.1))
    stop = tl.callbacks.GradientNormStop(1e9)  # the full-batch gradient norm, summed on the workers
    history = model.fit(*_chunked(X, y), epochs=4, batch_size=None, validation_split=0.2, callbacks=[stop], verbose=1)
    out = capsys.readouterr().out
    assert history.epoch == [0] and "val_loss" in history.history and "grad_norm" in history.history
    assert "Epoch 1/4" in out and "1/1 [==============================]" in out
    in_memory = _model(optimizer=tl.optim.SGD(lr=0.1))
    in_memory.fit(X[:800], y[:800], epochs=1, batch_size=800, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], in_memory.get_weights()[0], rtol=1e-12)


def test_divergence_on_dask_puts_back_the_last_finite_weights(client):
    X, y = _data()
    model = _model(optimizer=tl.optim.SGD(lr=1.0))
    with pytest.raises(tl.TrainingDivergedError) as caught:
        model.fit(*_chunked(1e3 * X, y), epochs=50, batch_size=None, verbose=0)
    assert caught.value.batch == 1 and caught.value.epoch > 1
    assert all(np.isfinite(w).all() for w in model.get_weights())


class _KillAWorker(tl.callbacks.Callback):
    """At the end of the first epoch, SIGKILL one worker process (its nanny starts a new one)."""

    def __init__(self, pid):
        self.pid = pid

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            os.kill(self.pid, signal.SIGKILL)


def test_a_worker_killed_mid_fit_is_recovered_from_and_the_result_is_unchanged(client):
    X, y = _data()
    Xd, yd = _chunked(X, y)
    Xd, yd = Xd.persist(), yd.persist()  # chunks held by the workers: the dead one's are recomputed
    distributed.wait([Xd, yd])
    pid = next(iter(client.run(os.getpid).values()))
    on_dask = _model()
    outcome = _run_with_timeout(
        90, lambda: on_dask.fit(Xd, yd, epochs=4, batch_size=None, verbose=0, callbacks=[_KillAWorker(pid)])
    )
    assert "error" not in outcome, outcome.get("error")
    in_memory = _model()
    in_memory.fit(X, y, epochs=4, batch_size=len(X), verbose=0)
    for p, q in zip(in_memory.get_weights(), on_dask.get_weights()):
        np.testing.assert_allclose(q, p, rtol=1e-12)
    client.wait_for_workers(2, timeout=60)


def _dies(pred, target):
    """A loss that kills the process computing it, unless that is the test's own (a worker is a child process)."""
    if multiprocessing.parent_process() is not None:
        os._exit(1)
    return tl.losses.mse(pred, target)


def test_a_step_whose_workers_keep_dying_fails_clearly_and_changes_no_weight(client):
    import dask

    X, y = _data(n=200)
    model = tl.nn.Sequential([tl.nn.Linear(3, 1, seed=0, dtype=np.float64)])
    model.compile(loss=_dies, optimizer=tl.optim.SGD(lr=0.05))
    weights = model.get_weights()
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        outcome = _run_with_timeout(
            90, lambda: model.fit(*_chunked(X, y, chunk=100), epochs=3, batch_size=None, verbose=0)
        )
    assert isinstance(outcome.get("error"), distributed.scheduler.KilledWorker), outcome
    assert "died" in str(outcome["error"])
    assert all(np.array_equal(p, q) for p, q in zip(weights, model.get_weights()))  # no half-trained weights
    assert model.history.epoch == []
    client.wait_for_workers(2, timeout=60)


def test_importing_the_package_imports_no_dask():
    optional = "{'dask', 'distributed', 'pandas', 'sklearn', 'matplotlib'}"
    code = f"import sys, tinygrad_lr; print(sorted(m for m in sys.modules if m.split('.')[0] in {optional}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_dask_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)  # `import dask` now fails, as when it is not installed
    with pytest.raises(ImportError, match=r'needs Dask, an optional extra: pip install "tinygrad_lr\[dask\]"'):
        tl.dask_chunks.require_dask("fit")
    with pytest.raises(ImportError, match=r"^reading big\.csv in chunks needs Dask"):
        tl.dask_chunks._chunks("big.csv", 1 << 20)  # (the chunks of a CSV too big for memory)
    start = time.perf_counter()
    assert tl.solvers.ols(np.arange(4.0), np.arange(4.0))[0] == pytest.approx([1.0])  # everything else works
    assert time.perf_counter() - start < 5


# ----- the command line on a CSV read in chunks -----


def _csv(tmp_path):
    X, y = _data(n=1500, d=2)
    path = tmp_path / "big.csv"
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header="a,b,price", comments="", fmt="%.17g")
    return path


def _report(out):
    """The lines that state results (not timings)."""
    return [line for line in out.splitlines() if line.split(":")[0].strip() in {"Gap", "Final loss", "R² on test"}]


def test_cli_reads_a_big_csv_in_chunks_with_the_in_memory_results(tmp_path, capsys, monkeypatch):
    import dask

    from tinygrad_lr import cli, experiment

    monkeypatch.setattr(dask.config, "config", {**dask.config.config, "scheduler": "threads"})  # no cluster
    path = _csv(tmp_path)
    argv = ["fit", "--csv", str(path), "--target", "price", "--epochs", "10", "--standardize", "--quiet"]
    assert cli.main([*argv, "--out-dir", str(tmp_path / "memory")]) == 0
    in_memory = capsys.readouterr().out
    monkeypatch.setattr(experiment, "CHUNKED_ABOVE", path.stat().st_size - 1)  # the file counts as big now
    assert cli.main([*argv, "--out-dir", str(tmp_path / "chunks")]) == 0
    on_dask = capsys.readouterr().out
    assert _report(on_dask) == _report(in_memory) and len(_report(on_dask)) == 3
    assert (tmp_path / "chunks" / "fit.png").stat().st_size > 1000


def test_cli_trains_on_a_running_scheduler(tmp_path, capsys, client):
    from tinygrad_lr import cli

    path = _csv(tmp_path)
    argv = [
        "fit",
        "--csv",
        str(path),
        "--target",
        "price",
        "--epochs",
        "40",
        "--standardize",
        "--out-dir",
        str(tmp_path),
    ]
    assert cli.main([*argv, "--scheduler", client.scheduler.address]) == 0
    out = capsys.readouterr().out
    assert f"{path} (in chunks), target price, features a, b; 960 train / 240 validation / 300 test rows" in out
    assert "R² on test:" in out


def test_cli_without_the_extra_names_it_and_exits_2(tmp_path, capsys, monkeypatch):
    from tinygrad_lr import cli, experiment

    monkeypatch.setitem(sys.modules, "dask", None)  # as if Dask were not installed
    path = _csv(tmp_path)
    code = cli.main(["fit", "--csv", str(path), "--target", "price", "--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("tinygrad-lr: error: --scheduler tcp://127.0.0.1:8786: reading the CSV in chunks needs Dask")
    assert 'pip install "tinygrad_lr[dask]"' in err
    monkeypatch.setattr(experiment, "CHUNKED_ABOVE", 10)
    assert cli.main(["fit", "--csv", str(path), "--target", "price"]) == 2
    assert "is over" in capsys.readouterr().err
    assert cli.main(["fit", "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert "--scheduler needs --csv PATH" in capsys.readouterr().err


def test_a_dask_sources_column_statistics_and_r2_are_those_of_the_rows_in_memory(client):
    X, y = _data(n=900)
    X[:, 1] = 7.0  # a constant column
    Xd, yd = _chunked(X, y)
    pred = X @ np.array([1.0, 0.0, 2.5]) - 3.0
    on_dask, in_memory = tl.sources.as_source(Xd, yd), tl.sources.as_source(X, y)
    for got, want in zip(on_dask.column_statistics(), in_memory.column_statistics()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    lazy_pred = Xd @ np.array([1.0, 0.0, 2.5]) - 3.0
    assert on_dask.r2_score(lazy_pred) == pytest.approx(in_memory.r2_score(pred), rel=1e-12)
    assert tl.sources.as_source(Xd, yd * 0 + 1).r2_score(lazy_pred) != tl.sources.as_source(Xd, yd * 0 + 1).r2_score(
        lazy_pred
    )  # nan


def test_cli_reading_a_csv_in_chunks_says_what_is_wrong_with_the_file(tmp_path, capsys, monkeypatch):
    import dask

    from tinygrad_lr import cli, experiment

    monkeypatch.setattr(dask.config, "config", {**dask.config.config, "scheduler": "threads"})  # no cluster
    monkeypatch.setattr(experiment, "CHUNKED_ABOVE", 10)  # every file counts as big
    path = tmp_path / "words.csv"
    path.write_text("a,b,price\n1,x,3\n4,5,6\n")
    assert cli.main(["fit", "--csv", str(path), "--target", "price", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinygrad-lr: error: {path}: not numeric (") and err.count("\n") == 1
    assert cli.main(["fit", "--csv", str(path), "--target", "cost", "--quiet"]) == 2
    err = capsys.readouterr().err
    columns = "['a', 'b', 'price']"
    assert err == f"tinygrad-lr: error: {path}: no column named 'cost' for the target; available columns: {columns}\n"
    missing = tmp_path / "missing.csv"
    monkeypatch.setattr(experiment, "_chunked", lambda settings: True)  # (a missing file has no size to compare)
    assert cli.main(["fit", "--csv", str(missing), "--target", "price", "--quiet"]) == 2
    assert capsys.readouterr().err == f"tinygrad-lr: error: --csv {missing}: no such file\n"


def test_a_weighted_fit_on_the_cluster_is_the_weighted_fit_in_memory(client):
    X, y = _data(n=600)
    w = np.random.default_rng(2).uniform(0.0, 3.0, size=len(X))
    w[:CHUNK] = 0.0  # a whole chunk that counts for nothing
    for batch_size in (None, 200):
        in_memory, on_dask = _model(metrics=["mae"], l2=0.01), _model(metrics=["mae"], l2=0.01)
        kwargs = {"epochs": 2, "shuffle": False, "verbose": 0, "validation_split": 0.25, "sample_weight": w}
        want = in_memory.fit(X, y, batch_size=batch_size or 450, **kwargs).history
        got = on_dask.fit(*_chunked(X, y, chunk=150), batch_size=batch_size, **kwargs).history
        for key in ("loss", "mae", "val_loss", "val_mae"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12)
        for p, q in zip(in_memory.get_weights(), on_dask.get_weights()):
            np.testing.assert_allclose(q, p, rtol=1e-12)
    assert on_dask.evaluate(*_chunked(X, y), sample_weight=w) == pytest.approx(
        in_memory.evaluate(X, y, sample_weight=w), rel=1e-12
    )
    unweighted = _model(metrics=["mae"], l2=0.01)
    kwargs["sample_weight"] = None
    assert unweighted.fit(*_chunked(X, y, chunk=150), batch_size=200, **kwargs).history != got


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_weighted_ols_and_ridge_on_the_cluster_equal_the_in_memory_answer(client, l2):
    X, y = _data(n=2000, d=4)
    w = np.random.default_rng(3).uniform(0.0, 2.0, size=len(X))
    Xd, yd = da.from_array(X, chunks=(300, 2)), da.from_array(y, chunks=300)
    for fit_intercept in (True, False):
        want = tl.solvers.ridge(X, y, l2, fit_intercept=fit_intercept, sample_weight=w)
        got = tl.solvers.ridge(Xd, yd, l2, fit_intercept=fit_intercept, sample_weight=w)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
        assert got[1] == pytest.approx(want[1], rel=1e-10, abs=1e-12)
    assert not np.allclose(tl.solvers.ols(Xd, yd, sample_weight=w)[0], tl.solvers.ols(Xd, yd)[0], rtol=1e-6)


# ----- full batches from the moments: one reduction for the whole fit -----


def test_a_fit_from_the_moments_moves_only_moments_and_no_more_for_more_epochs(client):
    """Full-batch fits of 5 and of 50 epochs (with a validation part and r2): the same transfers, each a
    result of (d + k)² numbers or so (the moments of a chunk, merged up the tree), no array chunk, and the
    in-memory run_eagerly numbers."""
    d = 5
    X, y = _persisted(200_000, d, 25_000, seed=3)
    transfers = {}
    for epochs in (5, 50):
        model = _model(d=d, optimizer=tl.optim.Adam(lr=0.1), metrics=["r2"], l2=0.01)
        since = time.time()
        history = model.fit(X, y, epochs=epochs, batch_size=None, verbose=0, validation_split=0.1)
        sent = _sent_since(client, since)
        assert history.step == "moments"
        assert not [key for _, _, keys in sent for key in keys if isinstance(key, tuple)]  # no chunk moved
        assert max(size / len(keys) for _, size, keys in sent) < 8 * (d + 2) ** 2 + 600  # a chunk's moments
        transfers[epochs] = len(sent)
    assert transfers[50] == transfers[5]  # the passes, not the epochs
    eager = _model(d=d, optimizer=tl.optim.Adam(lr=0.1), metrics=["r2"], l2=0.01, run_eagerly=True)
    want = eager.fit(X.compute(), y.compute(), epochs=50, batch_size=200_000, verbose=0, validation_split=0.1)
    for key in want.history:
        np.testing.assert_allclose(history.history[key], want.history[key], rtol=1e-9)
    for a, b in zip(model.get_weights(), eager.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    **MOMENTS_FITS,
    chunk=st.sampled_from([60, 333, 1000]),  # (a first chunk of fewer than REFERENCE_ROWS rows, or all)
    weighted=st.booleans(),
)
@example(offset=0.0, scale=1.0, noise=1.0, l2=0.01, use_adam=False, chunk=333, weighted=True)
def test_dask_full_batch_fit_from_the_moments_equals_run_eagerly_or_is_not_taken(
    offset, scale, noise, l2, use_adam, chunk, weighted
):
    import dask

    x, y = _offset_scaled_data(1000, offset, scale, noise)
    with dask.config.set(scheduler="threads"):  # (the cluster's answers are the same: see the test above)
        chunked = da.from_array(x, chunks=(chunk, -1)), da.from_array(y, chunks=(chunk, -1))
        fast = _fit_beside_run_eagerly(*chunked, l2, use_adam, weighted)
    if (offset, scale, noise) == (0.0, 1.0, 1.0):
        assert fast.step == "moments"


def test_cli_on_a_big_csv_parses_it_once_whatever_the_epochs(tmp_path, capsys, monkeypatch):
    import dask

    from tinygrad_lr import cli, dask_chunks, experiment

    monkeypatch.setattr(experiment, "CHUNKED_ABOVE", 10)  # every file counts as big
    monkeypatch.setattr(experiment, "CSV_BLOCKSIZE", 20_000)
    path = _csv(tmp_path)
    parsed = []
    original = dask_chunks._parse_block
    monkeypatch.setattr(dask_chunks, "_parse_block", lambda *args: parsed.append(1) or original(*args))
    chunks = len(dask_chunks.csv_rows(str(path), 20_000))
    assert chunks > 3
    reports = []
    for epochs in ("3", "300"):
        parsed.clear()
        argv = ["fit", "--csv", str(path), "--target", "price", "--epochs", epochs, "--standardize", "--quiet"]
        with dask.config.set(scheduler="threads"):  # (in this process, where the parses are counted)
            assert cli.main([*argv, "--out-dir", str(tmp_path / epochs)]) == 0
        assert len(parsed) == chunks  # each chunk parsed once: the moments, the closed form, R², the pictures
        reports.append(_report(capsys.readouterr().out))
    assert reports[0] != reports[1]  # (300 epochs went further)


@pytest.mark.parametrize("standardize", [False, True])
def test_the_closed_form_of_an_ill_conditioned_csv_read_in_chunks_keeps_the_digits_of_a_factor(
    tmp_path, monkeypatch, standardize
):
    """Nearly collinear columns (x and x² on a narrow interval far from 0): the normal equations of the
    moments would lose the square of the condition number, so the closed form comes from one more pass, the
    factor of the centred rows, and agrees with the in-memory solver's; on ordinary data it stays a pass
    fewer (the test above counts the parses)."""
    import dask

    from tinygrad_lr import experiment

    rng = np.random.default_rng(4)
    x = 1000 + 0.01 * rng.random(1500)
    y = 3 * x - 0.002 * x**2 + 0.01 * rng.normal(size=x.size)
    path = tmp_path / "collinear.csv"
    np.savetxt(path, np.column_stack([x, x**2, y]), delimiter=",", header="x,xx,y", comments="", fmt="%.17g")
    monkeypatch.setattr(experiment, "CSV_BLOCKSIZE", 20_000)
    settings = experiment.Settings(csv=str(path), target="y", seed=3, epochs=2, standardize=standardize, quiet=True)
    in_memory = experiment.run(settings)[1]
    monkeypatch.setattr(experiment, "CHUNKED_ABOVE", 10)
    with dask.config.set(scheduler="threads"):
        prepared, chunked = experiment.run(settings)
    train = prepared.data.summary.parts.moments[0]
    assert train.normal_condition() > 1e10  # (the moments' own solve would keep few digits...)
    exact = np.append(in_memory.optimum_coef, in_memory.optimum_intercept)
    from_moments = np.append(*train.least_squares())
    assert np.max(np.abs(from_moments[[0, 1, 2]] - exact) / np.abs(exact)) > 1e-6  # (...as here)
    got = np.append(chunked.optimum_coef, chunked.optimum_intercept)
    np.testing.assert_allclose(got, exact, rtol=1e-8)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text(alphabet="ab,\r", max_size=12), max_size=12),
    last_line_ended=st.booleans(),
    blocksize=st.integers(1, 40),
)
def test_a_csv_file_is_cut_into_chunks_of_whole_lines_counted_in_one_read(
    tmp_path_factory, lines, last_line_ended, blocksize
):
    """Chunk i holds the lines that start in its window of bytes (none inside a long line); together the chunks
    are the file; csv_rows counts each chunk's lines (less the header) from the line ends alone."""
    from tinygrad_lr import dask_chunks

    text = "\n".join(["h", *lines]) + ("\n" if last_line_ended else "")
    path = tmp_path_factory.mktemp("cut") / "lines.csv"
    path.write_bytes(text.encode())
    windows = -(-len(text) // blocksize)
    chunks = [dask_chunks._chunk(str(path), i, blocksize) for i in range(windows)]
    assert b"".join(chunks) == text.encode()
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n" and i + 1 < len(text)]
    lines_in = [sum(i * blocksize <= start < (i + 1) * blocksize for start in starts) for i in range(windows)]
    assert [chunk.count(b"\n") + (not chunk.endswith(b"\n")) if chunk else 0 for chunk in chunks] == lines_in
    assert dask_chunks.csv_rows(str(path), blocksize) == [lines_in[0] - 1, *lines_in[1:]]


def test_a_window_of_the_line_count_is_filled_from_short_reads():
    """The count reads a window at a time; a read may give fewer bytes than asked (a pipe does) before the end."""
    import io

    from tinygrad_lr import dask_chunks

    class Trickle(io.RawIOBase):  # at most 3 bytes a read
        def __init__(self, data: bytes):
            self.data, self.at = data, 0

        def readinto(self, view):
            piece = self.data[self.at : self.at + min(3, len(view))]
            view[: len(piece)] = piece
            self.at += len(piece)
            return len(piece)

    source, window = Trickle(b"abcdefghijklmnop"), bytearray(10)
    assert dask_chunks._read_into(source, window) == 10 and window == b"abcdefghij"
    assert dask_chunks._read_into(source, window) == 6 and window[:6] == b"klmnop"
    assert dask_chunks._read_into(source, window) == 0


def test_a_csv_read_in_chunks_is_split_as_in_memory_even_with_blank_lines(tmp_path, monkeypatch):
    """The lazy arrays of each part hold the rows the in-memory reader's split gives them; the first rows
    remembered for fit.png are theirs; blank lines (which pandas skips, the line count does not) cost a
    second pass, not a wrong split."""
    import dask

    from tinygrad_lr import experiment

    monkeypatch.setattr(experiment, "CSV_BLOCKSIZE", 20_000)
    path = _csv(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines[:400], "\n", "\n", *lines[400:]]))
    settings = experiment.Settings(csv=str(path), target="price", seed=3)
    in_memory = experiment.load_data(settings)
    monkeypatch.setattr(experiment, "CHUNKED_ABOVE", 10)
    with dask.config.set(scheduler="threads"):
        chunked = experiment.load_data(settings)
        for part in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
            lazy, want = getattr(chunked, part), getattr(in_memory, part)
            np.testing.assert_array_equal(lazy.compute(), want)
            np.testing.assert_array_equal(tl.sources.as_source(lazy).rows_to_draw(100), want[:100])
    assert chunked.summary.parts.counts == [len(in_memory.X_train), len(in_memory.X_val), len(in_memory.X_test)]


def test_a_non_finite_cell_of_a_csv_read_in_chunks_is_named(tmp_path, capsys, monkeypatch):
    import dask

    from tinygrad_lr import cli, experiment

    monkeypatch.setattr(experiment, "CHUNKED_ABOVE", 10)
    monkeypatch.setattr(experiment, "CSV_BLOCKSIZE", 20_000)
    path = _csv(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    lines[1001] = "1.5,nan,3\n"  # row 1000 (the header is line 0)
    path.write_text("".join(lines))
    with dask.config.set(scheduler="threads"):
        assert cli.main(["fit", "--csv", str(path), "--target", "price", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinygrad-lr: error: {path}: features: chunk ") and err.count("\n") == 1
    assert "has a non-finite value, nan, at row 1000, column 1; remove or impute such samples first" in err


def test_a_chunk_of_no_rows_adds_nothing(client):
    """A Dask array may hold a chunk of no rows (what a filter leaves): fit on every path (full batch from the
    moments or summed, mini-batches, eager), evaluate, predict and ols give what the same rows in memory give.
    (A block of no rows once sent its mean of nothing, nan, times 0 rows into the sums.)"""
    X, y = _data(n=400, d=2)
    Xd, yd = da.from_array(X, chunks=((150, 0, 250), -1)), da.from_array(y, chunks=((150, 0, 250),))
    for metrics, batch_size, run_eagerly in (([], None, False), (["mae", "r2"], None, False), (["mae"], 100, True)):
        on_dask, in_memory = (_model(d=2, metrics=metrics, run_eagerly=run_eagerly) for _ in range(2))
        kwargs = {"epochs": 2, "shuffle": False, "verbose": 0}
        got = on_dask.fit(Xd, yd, batch_size=batch_size, **kwargs).history
        want = in_memory.fit(X, y, batch_size=batch_size or len(X), **kwargs).history
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-9)
        for p, q in zip(in_memory.get_weights(), on_dask.get_weights()):
            np.testing.assert_allclose(q, p, rtol=1e-9)
        evaluated, expected = on_dask.evaluate(Xd, yd), on_dask.evaluate(X, y)
        assert evaluated == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(on_dask.predict(Xd).compute(), on_dask.predict(X), rtol=1e-12)
    for got, want in zip(tl.solvers.ols(Xd, yd), tl.solvers.ols(X, y)):
        np.testing.assert_allclose(got, want, rtol=1e-10)
