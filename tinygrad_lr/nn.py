"""Modules: a Module keeps parameters; Linear is y = x @ weight + bias; Sequential chains layers.

Keras-style `compile`/`fit`/`evaluate`/`predict` are methods of every Module; they live in
`training.py` (a higher layer), which the methods below load on first use.

Model files. `model.save(path, metadata=None)` writes one .npz (what `np.load(path)` reads, never a
pickle) at exactly `path`; `load_model(path)` rebuilds the model from it. Its members:

- `architecture`: UTF-8 JSON as a uint8 array (`bytes(archive["architecture"]).decode()`),
  `{"format": "tinygrad_lr.model", "version": 1, "model": LAYER}`, where LAYER is
  `{"class": "Linear", "in_features": 3, "out_features": 1, "bias": true, "dtype": "float64"}` or
  `{"class": "Sequential", "layers": [LAYER, ...]}` (dtype "float16", "float32" or "float64");
- `metadata`: the caller's JSON-able dict, the same way (`{}` when none);
- the weights, one member each, named as `state_dict()` names them ("0.weight", "0.bias", "1.0.weight"
  for a Sequential nested in a Sequential, "weight" for a lone Linear), of the layer's dtype.

A model of another kind (a Module of one's own, a subclass of Linear or Sequential) cannot be
described and is refused by `save`; its weights still go through `save_weights`/`load_weights`, and
`load_weights` also reads the weights of a model file. Both writers are atomic (a temporary file
beside the target, then a rename); both readers check every member's header against the file and
against what the model needs before reading any data, so a crafted file is a ValueError.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import reprlib
import secrets
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO, ClassVar, NamedTuple

import numpy as np

from tinygrad_lr import checks, ops
from tinygrad_lr.tensor import Tensor

__all__ = ["Linear", "Module", "Sequential", "load_model"]


class Module:
    """Base class: parameters are Tensor attributes with requires_grad=True, found in the order
    they were assigned, then those of sub-modules (attributes, or lists of modules)."""

    # set by the Keras-style methods (training.py), as on a Keras Model; declared here, assigned there
    compiled: Any  # what compile() chose: loss, optimizer, metrics, l2
    history: Any  # the History of the latest fit()
    stop_training: bool  # a callback sets it to end fit() after the current batch
    metadata: dict[str, Any]  # set by load_model: the metadata the model was saved with

    # how many times a Tensor or a Module (or a list of them) was assigned to a Module's attribute, in
    # any Module: a captured step (capture.py) looks again at the tensors its model holds when it changed
    structure_version = 0

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _STRUCTURE) or isinstance(getattr(self, name, None), _STRUCTURE):
            Module.structure_version += 1
        super().__setattr__(name, value)

    def forward(self, *args: Any) -> Tensor:
        """The model's output for its inputs; a subclass writes it (calling the module calls it)."""
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
        """Clear every parameter's `.grad` (to None), as PyTorch's `zero_grad(set_to_none=True)`."""
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
        _write_atomically(path, self.state_dict(), "save_weights")

    def load_weights(self, path: str | os.PathLike) -> None:
        """Read weights written by `save_weights`, or those of a model file (`save`). Never unpickles; every
        member's name, shape and dtype are checked against the model before any of its data are read; the
        model is unchanged on any error."""
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

        with _open_npz(path, "load_weights") as (headers, read):
            if ARCHITECTURE in headers and ARCHITECTURE not in params:  # a model file: its weights only
                headers = {name: header for name, header in headers.items() if name in params or name not in _JSON}
            check(headers)
            state = {name: read(name) for name in params}
        _set_from_file(self, "load_weights", path, state)

    def save(self, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
        """Write the model, its architecture, weights and `metadata` (a JSON-able dict), to one .npz at
        exactly `path`, atomically; `load_model(path)` rebuilds it (see the module's docstring).

        Only Linear layers and Sequentials of them (nested up to MAX_NESTING deep) can be described: a
        module of another class is a TypeError naming it; a layer or tensor used twice, or metadata JSON
        cannot hold (or would change: keys that are not strings), a ValueError. Both before anything is
        written.
        """
        weights: dict[str, np.ndarray] = {}
        architecture = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "model": _describe(self, "", 0, set(), weights),
        }
        # what is written must read back: the reader's own checks, on the description and the arrays
        expected = _expected_weights(architecture, "save")
        for name, (shape, dtype) in expected.items():
            if weights[name].shape != shape or weights[name].dtype != dtype:
                raise ValueError(
                    f"save: the model's {name} has shape {weights[name].shape} and dtype {weights[name].dtype}, "
                    f"but its layer says shape {shape} and dtype {dtype}; was a weight replaced by another Tensor?"
                )
        members = {
            ARCHITECTURE: _json_member(architecture, "save: the architecture"),
            METADATA: _metadata_member(metadata),
        }
        _write_atomically(path, {**members, **weights}, "save")

    # ----- Keras-style training -----
    # These hand the model to the training loop (training.py), which puts itself here when it is imported
    # (`import tinygrad_lr` does): nn never imports it, so the layers stay below the loop that trains them.
    trainer: ClassVar[Any] = None

    def compile(
        self,
        loss: str = "mse",
        optimizer: Any = "adam",
        metrics: Iterable[str] = (),
        l2: float = 0.0,
        run_eagerly: bool = False,
    ):
        """Choose the loss, optimizer, metrics and L2 strength for `fit`, and whether its steps are all
        plain eager ones (see `tl.training.compile`)."""
        trainer = self.trainer
        return trainer.compile(self, loss=loss, optimizer=optimizer, metrics=metrics, l2=l2, run_eagerly=run_eagerly)

    def fit(self, x: Any, y: Any, **kwargs: Any):
        """Train on (x, y) the Keras way; returns a History (all its options: `tl.training.fit`)."""
        return self.trainer.fit(self, x, y, **kwargs)

    def evaluate(self, x: Any, y: Any, batch_size: int | None = None, verbose: int = 0, sample_weight: Any = None):
        """The compiled loss (and metrics) on (x, y) (see `tl.training.evaluate`)."""
        return self.trainer.evaluate(self, x, y, batch_size=batch_size, verbose=verbose, sample_weight=sample_weight)

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Outputs for the samples x, as an (n, out) array (see `tl.training.predict`)."""
        return self.trainer.predict(self, x, batch_size=batch_size, verbose=verbose)

    def summary(self, print_fn=print) -> str:
        """Print (and return) a Keras-like table of layers, output shapes and parameter counts."""
        return self.trainer.summary(self, print_fn=print_fn)


def _write_atomically(path: str | os.PathLike, arrays: dict[str, np.ndarray], what: str) -> None:
    """Write `arrays` as an .npz at exactly `path`: a temporary file in the same folder, then a rename, so
    a crash mid-write leaves any previous file whole. Overwriting keeps the file's mode; a symlink is
    written through (its target is replaced). Errors start with `what` (the caller)."""
    target = os.path.realpath(os.fspath(path))
    fd, tmp = _new_file_beside(target, what)
    try:
        with os.fdopen(fd, "wb") as file:
            with contextlib.suppress(FileNotFoundError):  # a new file keeps the mode open() gave it
                shutil.copymode(target, tmp)
            _write_npz(file, arrays)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _new_file_beside(path: str, what: str) -> tuple[int, str]:
    """A new empty file in `path`'s folder: (its open descriptor, its name), as tempfile.mkstemp
    returns, but with the mode `open(path, "wb")` would give (0o666 less the umask), not 0o600."""
    folder = os.path.dirname(path)
    for _ in range(100):
        tmp = os.path.join(folder, f".tmp-weights-{secrets.token_hex(8)}.npz")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{what}: could not create a temporary file in {folder!r}")


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


@contextlib.contextmanager
def _open_npz(path: str, what: str) -> Iterator[tuple[dict[str, NpyHeader], Callable[[str], np.ndarray]]]:
    """(name → header of each member, read(name) → its array) of the .npz archive at `path`, open while
    the block runs.

    Every member must be an .npy array stored uncompressed (as save, save_weights and np.savez write
    them) whose header declares as many bytes as its zip entry holds, bytes that are in the file; so
    what the caller reads, after checking the headers, is at most the file's size, and a header that
    declares 10**12 values is an error, never a MemoryError. Never unpickles. A file that is not such an
    archive, or an OSError other than FileNotFoundError (a folder, say), is a ValueError that starts
    with `what` and names the file (and the member); FileNotFoundError passes.
    """
    try:
        with open(path, "rb") as file:
            is_npy = file.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX
        if is_npy:
            raise ValueError(
                f"{what}: {path!r} holds a single array (an .npy file), not the named arrays of an .npz "
                "archive; load the file that model.save or model.save_weights wrote"
            )
        with _reading(what, path):
            archive = zipfile.ZipFile(path)
        with archive:
            entries = _npy_entries(archive, path, what)

            def read(name: str) -> np.ndarray:
                with _reading(what, path):
                    return _read_array(archive, entries[name][0])

            yield {name: header for name, (_, header) in entries.items()}, read
    except FileNotFoundError:
        raise
    except OSError as error:  # a folder, a file without read permission: the system's reason, as it gives it
        raise ValueError(f"{what}: cannot read {path!r} ({error.strerror or error})") from None


def _npy_entries(archive: zipfile.ZipFile, path: str, what: str) -> dict[str, tuple[zipfile.ZipInfo, NpyHeader]]:
    """Name → (zip entry, .npy header) of every member, named as np.load names them; only headers are read."""
    size = os.path.getsize(path)
    entries: dict[str, tuple[zipfile.ZipInfo, NpyHeader]] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        where = f"{what}: {path!r} member {name!r}"
        if name in entries:
            raise ValueError(f"{where} appears twice; the file was not written by {_WRITERS}")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ValueError(
                f"{where} is compressed; a model or weights file holds its arrays uncompressed, as {_WRITERS} and "
                "np.savez write them (np.savez_compressed does not)"
            )
        # stored: the entry's bytes are the member's, and they must be in the file
        if info.file_size != info.compress_size or info.header_offset + info.compress_size > size:
            raise ValueError(
                f"{where}: its zip entry claims {max(info.file_size, info.compress_size)} bytes of a file of "
                f"{size} bytes; the file is truncated or was not written by {_WRITERS}"
            )
        with _reading(what, path), archive.open(info) as member:
            header = _npy_header(member)
            held = info.file_size - member.tell()  # the bytes after the header
        if header is None:  # NumPy hands out such a member as raw bytes
            raise ValueError(f"{where} is not an array (.npy); the file was not written by {_WRITERS}")
        if header.dtype.hasobject:  # a pickle: reading it is NumPy's own refusal, before it reads any data
            with _reading(what, path):
                _read_array(archive, info)
        if min(header.shape, default=0) < 0 or header.nbytes != held:
            raise ValueError(
                f"{where} declares {header.nbytes} bytes of data (shape {header.shape}, dtype {header.dtype}) "
                f"but its zip entry holds {held}; the file is truncated or was not written by {_WRITERS}"
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
        raise ValueError(f".npy format version {version}, which model and weights files never have")
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


_WRITERS = "model.save or save_weights"  # what writes the files these readers read

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


def _set_from_file(module: Module, what: str, path: str, state: dict[str, np.ndarray]) -> None:
    """`module.set_weights` from a file's arrays (parameter name → array), an error naming the file and member."""
    module.set_weights(
        [_checked_weight(f"{what}: {path!r} member {name!r}", state[name], p) for name, p in module.named_parameters()]
    )


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
        """x: (..., in_features) → x @ weight + bias: (..., out_features); an array is cast to the weight's dtype."""
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
        """The output's shape for an input of `input_shape`: its last axis becomes out_features."""
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
        """Each layer applied to the previous one's output, in order; no layers: x itself, as a Tensor."""
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


# ----- model files (the module's docstring describes them) -----

MODEL_FORMAT = "tinygrad_lr.model"
MODEL_VERSION = 1  # of the architecture's JSON; a reader refuses any other
ARCHITECTURE, METADATA = "architecture", "metadata"  # the members that hold JSON; the others are weights
_JSON = (ARCHITECTURE, METADATA)
MODEL_DTYPES = ("float16", "float32", "float64")
MAX_JSON_BYTES = 16 * 2**20  # per JSON member: parsed, JSON takes several times its size in memory
MAX_NESTING = 64  # Sequentials in Sequentials, at most this deep
_KEYS = {"Linear": {"class", "in_features", "out_features", "bias", "dtype"}, "Sequential": {"class", "layers"}}


def load_model(path: str | os.PathLike) -> Module:
    """The model that `model.save` wrote at exactly `path`, its weights set, its metadata in `.metadata`
    (a dict; {} when none).

    Never unpickles. Every member's header is checked before its data are read: the JSON members'
    against MAX_JSON_BYTES, the weights' against the shapes and dtypes the architecture gives them. A
    file that is not such a model file (a weights-only file, members extra or missing, bad JSON, another
    format version) is a ValueError naming the file and the problem.
    """
    path = os.fspath(path)
    where = f"load_model: {path!r}"
    with _open_npz(path, "load_model") as (headers, read):
        if ARCHITECTURE not in headers:
            raise ValueError(
                f"{where} has no {ARCHITECTURE!r} member: it is not a model file written by model.save (a file "
                "of save_weights holds weights only; load those into a model built in code, with load_weights)"
            )
        architecture = _read_json(headers, read, ARCHITECTURE, where)
        expected = _expected_weights(architecture, f"{where}: its architecture")
        missing = [name for name in [*_JSON, *expected] if name not in headers]
        extra = [name for name in headers if name not in expected and name not in _JSON]
        if missing or extra:
            problems = [
                f"{label} {names}" for label, names in (("lacks", missing), ("has extra members", extra)) if names
            ]
            raise ValueError(f"{where} {' and '.join(problems)} for the model its architecture describes")
        for name, (shape, dtype) in expected.items():
            header = headers[name]
            if header.shape != shape or header.dtype.newbyteorder("=") != dtype:
                raise ValueError(
                    f"{where} member {name!r} is {header.dtype} of shape {header.shape}, but the architecture makes "
                    f"it {dtype} of shape {shape}"
                )
        metadata = _read_json(headers, read, METADATA, where)
        if not isinstance(metadata, dict):
            raise ValueError(f"{where}: its metadata is a JSON {type(metadata).__name__}, not an object (a dict)")
        state = {name: read(name) for name in expected}
    model = _build(architecture["model"])
    _set_from_file(model, "load_model", path, state)
    model.metadata = metadata
    return model


def _describe(module: Module, prefix: str, depth: int, seen: set[int], weights: dict[str, np.ndarray]) -> dict:
    """The JSON description of `module` (at `prefix`, as state_dict names it), its arrays added to `weights`.

    A layer or a tensor met twice is refused: the file describes each layer once, with weights of its own.
    """
    place = f"layer {prefix[:-1]}" if prefix else "the model"
    if id(module) in seen:
        raise ValueError(
            f"save: {place} is a layer used twice in the model; a model file gives each layer its own weights"
        )
    seen.add(id(module))
    if type(module) is Linear:
        for name, tensor in (("weight", module.weight), ("bias", module.bias)):
            if tensor is None:
                continue
            if id(tensor) in seen:
                raise ValueError(f"save: the {name} of {place} is a Tensor that another layer holds too")
            seen.add(id(tensor))
            weights[prefix + name] = tensor.data
        return {
            "class": "Linear",
            "in_features": module.in_features,
            "out_features": module.out_features,
            "bias": module.bias is not None,
            "dtype": module.weight.dtype.name,
        }
    if type(module) is Sequential and depth < MAX_NESTING:
        layers = [_describe(layer, f"{prefix}{i}.", depth + 1, seen, weights) for i, layer in enumerate(module.layers)]
        return {"class": "Sequential", "layers": layers}
    if type(module) is Sequential:
        raise ValueError(f"save: {place} nests Sequentials more than {MAX_NESTING} deep")
    raise TypeError(
        f"save: {place} is a {type(module).__name__}, which a model file cannot describe: it holds Linear layers "
        "and Sequentials of them (not subclasses, whose forward may differ); save its weights with save_weights "
        "and build the model in code to load them"
    )


def _expected_weights(architecture: Any, where: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Weight name → (shape, dtype) that the architecture's JSON gives the model; any JSON that is not a
    version-1 description is a ValueError that starts with `where`. Nothing is allocated."""
    if not isinstance(architecture, dict) or architecture.get("format") != MODEL_FORMAT:
        raise ValueError(f'{where} is not a {MODEL_FORMAT!r} description (its "format" is not {MODEL_FORMAT!r})')
    version = architecture.get("version")
    if type(version) is not int or version != MODEL_VERSION:
        raise ValueError(
            f"{where} has format version {reprlib.repr(version)}; this tinygrad_lr reads version {MODEL_VERSION}"
        )
    if set(architecture) != {"format", "version", "model"}:
        raise ValueError(f'{where} has keys {sorted(architecture)}; version 1 has "format", "version" and "model"')
    expected: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    pending = [(architecture["model"], "", 0)]  # (layer, its prefix, its depth), depth first
    while pending:
        node, prefix, depth = pending.pop()
        place = f"layer {prefix[:-1]}" if prefix else "the model"
        kind = node.get("class") if isinstance(node, dict) else None
        if not isinstance(kind, str) or kind not in _KEYS:
            raise ValueError(f'{where}: {place} is {reprlib.repr(node)}, not a "Linear" or a "Sequential"')
        if set(node) != _KEYS[kind]:
            raise ValueError(f"{where}: {place} has keys {sorted(node)}; a {kind} has {sorted(_KEYS[kind])}")
        if kind == "Sequential":
            if not isinstance(node["layers"], list):
                raise ValueError(f'{where}: the "layers" of {place} are {reprlib.repr(node["layers"])}, not a list')
            if depth >= MAX_NESTING:
                raise ValueError(f"{where}: {place} nests Sequentials more than {MAX_NESTING} deep")
            pending.extend(
                (layer, f"{prefix}{i}.", depth + 1) for i, layer in reversed(list(enumerate(node["layers"])))
            )
            continue
        for key in ("in_features", "out_features"):
            if type(node[key]) is not int or node[key] < 1:
                raise ValueError(f"{where}: the {key} of {place} is {reprlib.repr(node[key])}, not a positive integer")
        if type(node["bias"]) is not bool:
            raise ValueError(f'{where}: the "bias" of {place} is {reprlib.repr(node["bias"])}, not true or false')
        if not isinstance(node["dtype"], str) or node["dtype"] not in MODEL_DTYPES:
            raise ValueError(
                f"{where}: the dtype of {place} is {reprlib.repr(node['dtype'])}, not one of {MODEL_DTYPES}"
            )
        dtype = np.dtype(node["dtype"])
        expected[f"{prefix}weight"] = (node["in_features"], node["out_features"]), dtype
        if node["bias"]:
            expected[f"{prefix}bias"] = (node["out_features"],), dtype
    return expected


def _build(node: dict) -> Module:
    """The module a checked description (see _expected_weights) describes, with fresh weights."""
    if node["class"] == "Sequential":
        return Sequential([_build(layer) for layer in node["layers"]])
    dtype = np.dtype(node["dtype"])
    return Linear(node["in_features"], node["out_features"], bias=node["bias"], seed=0, dtype=dtype)


def _json_member(value: Any, what: str) -> np.ndarray:
    """`value` as JSON text in a uint8 array; a ValueError that starts with `what` when JSON cannot hold it."""
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as error:
        raise ValueError(
            f"{what} must be JSON-able (dicts with str keys, lists, str, int, finite float, bool, None): {error}"
        ) from None
    data = text.encode()
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what} takes {len(data)} bytes of JSON; a model file holds at most {MAX_JSON_BYTES}")
    return np.frombuffer(data, np.uint8)


def _metadata_member(metadata: dict[str, Any] | None) -> np.ndarray:
    """The metadata member: a dict JSON gives back equal (tuples come back as lists); {} for None."""
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict):
        raise ValueError(f"save: metadata must be a dict, got a {type(metadata).__name__}")
    member = _json_member(metadata, "save: metadata")  # (which also refuses a dict that holds itself)
    pending: list[Any] = [metadata]
    while pending:  # JSON would write a key 1 as "1": refused rather than changed
        item = pending.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise ValueError(f"save: metadata keys must be strings (JSON's), got {key!r}")
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return member


def _read_json(headers: dict[str, NpyHeader], read: Callable[[str], np.ndarray], name: str, where: str) -> Any:
    """The JSON value of member `name`, its header checked first (uint8 text of at most MAX_JSON_BYTES)."""
    header = headers[name]
    if header.dtype != np.uint8 or len(header.shape) != 1 or header.shape[0] > MAX_JSON_BYTES:
        raise ValueError(
            f"{where} member {name!r} is {header.dtype} of shape {header.shape}; a model file holds its {name} as "
            f"JSON text: uint8, shape (n,), n at most {MAX_JSON_BYTES}"
        )
    try:
        return json.loads(read(name).tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as error:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise ValueError(f"{where} member {name!r} is not JSON text: {error}") from None
