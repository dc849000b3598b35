"""Modules: a Module keeps parameters; Linear is y = x @ weight + bias; Sequential chains layers.

Keras-style `compile`/`fit`/`evaluate`/`predict` are methods of every Module; they live in
`training.py` (a higher layer), which the methods below load on first use.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO, NamedTuple

import numpy as np

from tinygrad_lr import checks, ops
from tinygrad_lr.tensor import Tensor

__all__ = ["Linear", "Module", "Sequential"]


class Module:
    """Base class: parameters are Tensor attributes with requires_grad=True, found in the order
    they were assigned, then those of sub-modules (attributes, or lists of modules)."""

    # set by the Keras-style methods (training.py), as on a Keras Model; declared here, assigned there
    compiled: Any  # what compile() chose: loss, optimizer, metrics, l2
    history: Any  # the History of the latest fit()
    stop_training: bool  # a callback sets it to end fit() after the current batch

    # how many times a Tensor or a Module (or a list of them) was assigned to a Module's attribute, in
    # any Module: a captured step (capture.py) looks again at the tensors its model holds when it changed
    structure_version = 0

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _STRUCTURE) or isinstance(getattr(self, name, None), _STRUCTURE):
            Module.structure_version += 1
        super().__setattr__(name, value)

    def forward(self, *args: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.forward is not written")

    def __call__(self, *args: Any) -> Tensor:
        return self.forward(*args)

    # ----- parameters -----
    def _children(self) -> list[tuple[str, Any]]:
        """(name, value) of every attribute, a list's items named by their index, in assignment order."""
        found: list[tuple[str, Any]] = []
        for name, value in vars(self).items():
            if isinstance(value, (list, tuple)):
                found.extend((str(i), item) for i, item in enumerate(value))
            else:
                found.append((name, value))
        return found

    def _walk(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, Module | Tensor]]:
        """(name, object) for this module, then its parameters and sub-modules, depth first.

        An object met a second time (a layer used twice, a tensor shared by two layers) is skipped,
        as PyTorch does: it keeps the name of its first place, and nothing is counted or stepped twice.
        """
        seen.add(id(self))
        yield prefix.removesuffix("."), self
        for name, child in self._children():
            if id(child) in seen:
                continue
            if isinstance(child, Tensor) and child.requires_grad:
                seen.add(id(child))
                yield prefix + name, child
            elif isinstance(child, Module):
                yield from child._walk(f"{prefix}{name}.", seen)

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Tensor]]:
        """(name, parameter) in registration order, each parameter once, e.g. ("0.weight", ...)."""
        return [(name, item) for name, item in self._walk(prefix, set()) if isinstance(item, Tensor)]

    def modules(self) -> list[Module]:
        """This module and every module inside it, in registration order, each once."""
        return [item for _, item in self._walk("", set()) if isinstance(item, Module)]

    def parameters(self) -> list[Tensor]:
        """Trainable tensors, in registration order (Keras order: kernel, then bias, layer by layer), each once."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the parameters' arrays, in `parameters()` order."""
        return [p.data.copy() for p in self.parameters()]

    def set_weights(self, weights: Iterable[Any]) -> None:
        """Write arrays into the parameters (in place), each cast to its parameter's dtype.

        Every array is checked first (count, real numbers, shape, finite after the cast, so 1e300 is
        refused by a float32 model); when any is refused, nothing changes.
        """
        params = self.parameters()
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"set_weights: the model has {len(params)} weight arrays, got {len(weights)}")
        cast = [_checked_weight(f"set_weights: weight {i}", w, p) for i, (p, w) in enumerate(zip(params, weights))]
        for p, w in zip(params, cast):
            p.data[...] = w

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name → a copy of its array, e.g. {"0.weight": ..., "0.bias": ...}."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The inverse of `state_dict`: names and shapes must match exactly."""
        names = [name for name, _ in self.named_parameters()]
        if sorted(state) != sorted(names):
            raise ValueError(f"load_state_dict: the model has weights {names}, got {sorted(state)}")
        self.set_weights([state[name] for name in names])

    # ----- weights on disk -----
    def save_weights(self, path: str | os.PathLike) -> None:
        """Write the weights to `path` as an .npz of plain arrays, atomically: a temporary file in the
        same folder, then a rename, so a crash mid-write leaves any previous file intact.

        Overwriting a file keeps its mode; a symlink is written through (its target is replaced).
        """
        target = os.path.realpath(os.fspath(path))
        fd, tmp = _new_file_beside(target)
        try:
            with os.fdopen(fd, "wb") as file:
                with contextlib.suppress(FileNotFoundError):  # a new file keeps the mode open() gave it
                    shutil.copymode(target, tmp)
                _write_npz(file, self.state_dict())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise

    def load_weights(self, path: str | os.PathLike) -> None:
        """Read weights written by `save_weights`. Never unpickles; every member's name, shape and dtype
        are checked against the model before any of its data are read; the model is unchanged on any error."""
        path = os.fspath(path)
        params = dict(self.named_parameters())

        def check(headers: dict[str, NpyHeader]) -> None:
            if sorted(headers) != sorted(params):
                raise ValueError(
                    f"load_weights: {path!r} holds weights {sorted(headers)} but this model has {list(params)}; "
                    "it was saved from a different model"
                )
            for name, p in params.items():
                if headers[name].shape != p.shape:
                    raise ValueError(
                        f"load_weights: {path!r} has {name} of shape {headers[name].shape}, "
                        f"but this model's {name} has shape {p.shape}"
                    )
                # the dtype, refused in the words of the values' own check, before any value is read
                checks.as_real_array(f"load_weights: {path!r} member {name!r}", np.empty(0, headers[name].dtype))

        try:
            state = read_weights_file(path, check)
        except FileNotFoundError:
            raise
        except OSError as error:
            raise _unreadable("load_weights", path, error) from None
        self.set_weights(
            [_checked_weight(f"load_weights: {path!r} member {name!r}", state[name], p) for name, p in params.items()]
        )

    # ----- Keras-style training (training.py) -----
    def compile(
        self,
        loss: str = "mse",
        optimizer: Any = "adam",
        metrics: Iterable[str] = (),
        l2: float = 0.0,
        run_eagerly: bool = False,
    ):
        """Choose the loss, optimizer, metrics and L2 strength for `fit`, and whether its steps are all
        plain eager ones (see training.compile)."""
        from tinygrad_lr import training

        return training.compile(self, loss=loss, optimizer=optimizer, metrics=metrics, l2=l2, run_eagerly=run_eagerly)

    def fit(self, x: Any, y: Any, **kwargs: Any):
        """Train on (x, y) the Keras way; returns a History (see training.fit)."""
        from tinygrad_lr import training

        return training.fit(self, x, y, **kwargs)

    def evaluate(self, x: Any, y: Any, batch_size: int | None = None, verbose: int = 0, sample_weight: Any = None):
        """The compiled loss (and metrics) on (x, y) (see training.evaluate)."""
        from tinygrad_lr import training

        return training.evaluate(self, x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Outputs for the samples x, as an (n, out) array (see training.predict)."""
        from tinygrad_lr import training

        return training.predict(self, x, batch_size=batch_size, verbose=verbose)

    def summary(self, print_fn=print) -> str:
        """Print (and return) a Keras-like table of layers, output shapes and parameter counts."""
        from tinygrad_lr import training

        return training.summary(self, print_fn=print_fn)


def _new_file_beside(path: str) -> tuple[int, str]:
    """A new empty file in `path`'s folder: (its open descriptor, its name), as tempfile.mkstemp
    returns, but with the mode `open(path, "wb")` would give (0o666 less the umask), not 0o600."""
    folder = os.path.dirname(path)
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-weights-{secrets.token_hex(8)}.npz")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"save_weights: could not create a temporary file in {folder!r}")


def _write_npz(file: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """The .npz format np.load reads: a zip with one `name.npy` member per array, as np.savez writes.

    Written by hand because np.savez(file, **arrays) takes its own keywords (`file`, `allow_pickle`)
    from the same namespace as the arrays' names, and a parameter may be called `file`.
    """
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


class NpyHeader(NamedTuple):
    """What an .npy member's header declares, read before any of its data."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_weights_file(
    path: str, check: Callable[[dict[str, NpyHeader]], None], what: str = "load_weights"
) -> dict[str, np.ndarray]:
    """Name → array of the .npz archive at `path`, no array read before `check` has seen every header.

    Every member must be an .npy array stored uncompressed (as save_weights and np.savez write them)
    whose header declares as many bytes as its zip entry holds, bytes that are in the file; then
    `check(headers)`, the caller's, raises for any name, shape or dtype it does not expect. So what is
    read is at most the file's size, and only what the caller expects: a header that declares 10**12
    values is an error, never a MemoryError. Never unpickles. A file that is not such an archive is a
    ValueError that starts with `what` and names the file (and the member); OSErrors, FileNotFoundError
    included, are the operating system's, as it gives them.
    """
    with open(path, "rb") as file:
        is_npy = file.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX
    if is_npy:
        raise ValueError(
            f"{what}: {path!r} holds a single array (an .npy file), not the named weights of an .npz "
            "archive; load the file that model.save_weights wrote"
        )
    with _reading(what, path):
        archive = zipfile.ZipFile(path)
    with archive:
        entries = _npy_entries(archive, path, what)
        check({name: header for name, (_, header) in entries.items()})
        with _reading(what, path):
            return {name: _read_array(archive, info) for name, (info, _) in entries.items()}


def _npy_entries(archive: zipfile.ZipFile, path: str, what: str) -> dict[str, tuple[zipfile.ZipInfo, NpyHeader]]:
    """Name → (zip entry, .npy header) of every member, named as np.load names them; only headers are read."""
    size = os.path.getsize(path)
    entries: dict[str, tuple[zipfile.ZipInfo, NpyHeader]] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        where = f"{what}: {path!r} member {name!r}"
        if name in entries:
            raise ValueError(f"{where} appears twice; the file was not written by save_weights")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(
                f"{where} is compressed; a weights file holds its arrays uncompressed, as save_weights and "
                "np.savez write them (np.savez_compressed does not)"
            )
        # stored: the entry's bytes are the member's, and they must be in the file
        if info.file_size != info.compress_size or info.header_offset + info.compress_size > size:
            raise ValueError(
                f"{where}: its zip entry claims {max(info.file_size, info.compress_size)} bytes of a file of "
                f"{size} bytes; the file is truncated or was not written by save_weights"
            )
        with _reading(what, path), archive.open(info) as member:
            header = _npy_header(member)
            held = info.file_size - member.tell()  # the bytes after the header
        if header is None:  # NumPy hands out such a member as raw bytes
            raise ValueError(f"{where} is not an array (.npy); the file was not written by save_weights")
        if header.dtype.hasobject:  # a pickle: reading it is NumPy's own refusal, before it reads any data
            with _reading(what, path):
                _read_array(archive, info)
        if min(header.shape, default=0) < 0 or header.nbytes != held:
            raise ValueError(
                f"{where} declares {header.nbytes} bytes of data (shape {header.shape}, dtype {header.dtype}) "
                f"but its zip entry holds {held}; the file is truncated or was not written by save_weights"
            )
        entries[name] = info, header
    return entries


def _npy_header(member: IO[bytes]) -> NpyHeader | None:
    """The header at the start of an .npy member, the stream left at its data; None when it is not .npy."""
    try:
        version = np.lib.format.read_magic(member)
    except ValueError:  # too short, or another magic string
        return None
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read_header:
        raise ValueError(f".npy format version {version}, which weights files never have")
    shape, _, dtype = read_header[version](member)
    return NpyHeader(shape, dtype)


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """A member's array; an array of Python objects (a pickle) is refused, never unpickled."""
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


@contextlib.contextmanager
def _reading(what: str, path: str) -> Iterator[None]:
    """What zipfile and NumPy raise on a damaged archive, as one ValueError that says so (OSErrors pass)."""
    try:
        yield
    except _UNREADABLE as error:
        raise _unreadable(what, path, error) from None


# what reading a damaged .npz can raise (a pickled member is a ValueError, an encrypted one a RuntimeError)
_UNREADABLE = (ValueError, EOFError, KeyError, NotImplementedError, RuntimeError, zipfile.BadZipFile, zlib.error)


def _unreadable(what: str, path: str, error: BaseException) -> ValueError:
    return ValueError(f"{what}: cannot read {path!r} as a weights file (truncated or corrupted?): {error}")


def _checked_weight(what: str, value: Any, param: Tensor) -> np.ndarray:
    """`value` as an array of `param`'s dtype and shape, every value finite after the cast; else a
    ValueError that starts with `what` (which weight of which call)."""
    array = checks.as_real_array(what, value, param.dtype)
    if array.shape != param.shape:
        raise ValueError(f"{what} must have shape {param.shape}, got {array.shape}")
    return array


_STRUCTURE = (Tensor, Module, list, tuple)  # what an attribute holding parameters may be


class Linear(Module):
    """A dense layer, `y = x @ weight + bias`, in Keras' layout.

    x: (n, in_features) → y: (n, out_features); weight: (in_features, out_features); bias: (out_features,).
    The weight starts Glorot-uniform, U(±√(6/(in+out))), and the bias at zero, as in Keras.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, seed: int | None = None, dtype: Any = np.float32
    ):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Linear: {name} must be a positive integer, got {value!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        limit = np.sqrt(6.0 / (in_features + out_features))
        rng = np.random.default_rng(seed)
        self.weight = Tensor(rng.uniform(-limit, limit, (in_features, out_features)), requires_grad=True, dtype=dtype)
        self.bias = Tensor(np.zeros(out_features), requires_grad=True, dtype=dtype) if bias else None

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x, dtype=self.weight.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            hint = " (for n samples of one feature use shape (n, 1))" if self.in_features == 1 else ""
            raise ValueError(
                f"{self!r}: input has shape {x.shape}; its last axis must hold {self.in_features} features{hint}"
            )
        if self.bias is None:
            return x @ self.weight
        return ops.Affine.apply(x, self.weight, self.bias)

    def output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], self.out_features)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Sequential(Module):
    """Layers applied in order: `Sequential([Linear(3, 1)])` (or `Sequential(layer1, layer2)`)."""

    def __init__(self, layers: Iterable[Module] | Module = (), *more: Module):
        layers = [layers, *more] if isinstance(layers, Module) else [*layers, *more]
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, not a Module")
        self.layers = layers

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        if not self.layers:  # nothing to apply: the input, as a Tensor
            return x if isinstance(x, Tensor) else Tensor(x)
        out = self.layers[0](x)  # (the first layer casts an array to its own dtype)
        for layer in self.layers[1:]:
            out = layer(out)
        return out

    def output_shape(self, input_shape: tuple) -> tuple:
        """The output's shape for an input of `input_shape`; every layer must have `output_shape` (as Linear)."""
        for layer in self.layers:
            layer_output_shape = getattr(layer, "output_shape", None)
            if layer_output_shape is None:
                raise TypeError(f"Sequential.output_shape: {type(layer).__name__} does not say its output's shape")
            input_shape = layer_output_shape(input_shape)
        return input_shape

    def __repr__(self) -> str:
        return f"Sequential({self.layers!r})"
