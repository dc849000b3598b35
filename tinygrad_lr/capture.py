"""A captured training step: record the ops of one step, then replay them without rebuilding the graph.

An eager step pays for its Python objects: a Function and a Tensor per op, the walk that orders
the backward pass, the checks of every layer. On the small problems of linear regression that
costs more than the arithmetic. `capture_step(fn, optimizer)` runs `fn` once as usual while
recording the ops it applies (a tape), and turns that into data, then code, in three steps:
- `recorded`: the tape as a `Graph` of `Node`s (each op's class, options, the numbered places of its
  inputs and output), the order the eager backward walk took, the leaves;
- `fused`: a pass over the graph that puts fused ops in place of the pairs they compute (below);
- `replay_source` / `compiled_replay`: one straight-line Python function of the graph (the ops'
  `forward` calls in order, then their `backward` calls in the eager walk's order), registered with
  `linecache` so that a traceback through it shows its lines.
Every later call runs that function on the new inputs and steps the optimizer: the same NumPy calls in
the same order, so the same numbers, bit for bit, without the bookkeeping. It is the idea of CUDA graphs
and of `jax.jit`'s tracing, with Python as the target language (`step.recordings` holds a recording per
input shape: its `.graph`, and its `.source`, the function). The replay makes its ops afresh and keeps
what they need for backward in its locals. (Generated code, not an interpreter looping over the nodes:
it cut a boston step's bookkeeping from 3.1 to 1.0 µs against the loop over recorded entries it replaced.)

    step = tl.capture_step(lambda xb, yb: tl.losses.mse(model(xb), yb), optimizer)
    for xb, yb in batches:
        loss = step(xb, yb)      # zero_grad, forward, backward and optimizer.step(); the loss as a float

As with `jax.jit`, the step is recorded once per shape and dtype of its inputs (a last, shorter
batch gets its own recording), and what is recorded is what runs. A recording is reused only while
everything it assumed still holds, as `torch.compile` guards a compiled frame; when one of these
changes, the step is recorded again (and checked again):
- the shapes and dtypes of the inputs;
- the Python numbers (and strings) `fn` reads from its closure or its module's globals, and those
  of the functions it calls (an `l2` that a schedule changes); other objects it reads there by
  identity (a model replaced by another);
- the tensors the step reads: which of them require grad (a layer frozen or unfrozen), their
  shapes and dtypes, and every tensor of a Module that `fn` reads (a weight replaced by another
  Tensor: `Module` counts such assignments, `nn.Module.structure_version`);
- the grad mode: under `tl.no_grad()` the step raises, as `loss.backward()` would.
The optimizer is not recorded: its `step()` runs as usual after each replay and reads its
hyperparameters then, so a learning-rate schedule needs no guard. A call is first put to the guard
of each recording, one generated expression that compares each of those things with what it was
(`_write_guard`, as `torch.compile` writes its guards); a call that none lets through builds its
key, finds its recording (or records), and writes that recording's guard again.

What no guard can see, a Python `if` on a value or NumPy applied to an input's values, is caught
by the first replay of each recording, which is checked against an eager run of `fn` on the same
inputs: a difference is an error that names the cause it found (other ops applied, or a constant
with another value). After that the replay is trusted. A `fn` that takes derivatives itself
(`backward`, `tl.autograd.grad`) is refused at recording: the masks of its gradient's graph would
be frozen. Calls from several threads take turns: each is a whole step.

Before it is written out, a recording's graph is fused where the floor of a hand-written NumPy step does
the work in one go: `x @ w + b` (`MatMul`, `Add`) becomes `Affine`, and `Affine` followed by `MeanSquaredError`
becomes `AffineMSE` (ops.py), which computes the difference once. The numbers stay the same, to the
bit (and the first replay's check against eager checks that too).
"""

from __future__ import annotations

import functools
import hashlib
import linecache
import operator
import threading
import types
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tinygrad_lr import nn, ops, tensor
from tinygrad_lr.tensor import Function, Tensor, accumulate_grads, backpropagate, no_grad

__all__ = ["CapturedStep", "Graph", "Node", "capture_step", "compiled_replay", "fused", "recorded", "replay_source"]


# ----- the recording as data: what ran, where each value is, in which order gradients flow -----


@dataclass(frozen=True)
class Node:
    """One op of a recorded step: its class and keyword options, the places of its inputs and output (see
    `Graph`), which inputs need a gradient, and whether its backward gives every input's gradient in that
    input's own shape (`exact`: the fused ops, whose inputs' shapes fusion checked), so that the replay need
    not sum them back."""

    op: type[Function]
    options: dict[str, Any]
    inputs: tuple[int, ...]
    output: int
    needs_input_grad: tuple[bool, ...]
    exact: bool = False


@dataclass(frozen=True)
class Graph:
    """A recorded step, all the replay needs: every value has a place (a number): the step's inputs first,
    then the leaves (parameters and constants, whose `.data` is read at every replay, so that in-place
    updates are seen), then each op's output. `forward`: the ops in the order they ran; `backward`: the ops
    whose backward runs, in the order the eager walk took them (so gradients are summed in the same order);
    `grad_leaves`: the leaves a gradient reaches, in that order; `outputs`: fn's outputs (the loss first);
    `specs`: each place's (shape, dtype)."""

    input_count: int
    leaves: tuple[tuple[int, Tensor], ...]
    forward: tuple[Node, ...]
    backward: tuple[Node, ...]
    grad_leaves: tuple[tuple[int, Tensor], ...]
    outputs: tuple[int, ...]
    specs: dict[int, tuple[tuple[int, ...], np.dtype]]


def recorded(tape: list[tuple], inputs: list[Tensor], outputs: list[Tensor], visits: list[Tensor]) -> Graph:
    """The Graph of a step run eagerly: its `tape` of (op, input tensors, options, output tensor) as
    `Function.apply` appends them, the step's input tensors, its outputs, and the tensors its backward
    walk visited, in order."""
    place = {id(t): i for i, t in enumerate(inputs)}  # (ids of this recording run's tensors: used here only)
    leaves = []
    for t in _leaves(tape, inputs, outputs):
        _check_leaf(t, inputs)
        place[id(t)] = len(place)
        leaves.append((place[id(t)], t))
    for _, _, _, out in tape:
        place[id(out)] = len(place)
    node_of = {
        id(ctx): Node(type(ctx), options, tuple(place[id(t)] for t in tensors), place[id(out)], ctx.needs_input_grad)
        for ctx, tensors, options, out in tape
    }
    return Graph(
        input_count=len(inputs),
        leaves=tuple(leaves),
        forward=tuple(node_of[id(ctx)] for ctx, _, _, _ in tape),
        backward=tuple(node_of[id(t._ctx)] for t in visits if t._ctx is not None),
        grad_leaves=tuple((place[id(t)], t) for t in visits if t._ctx is None),
        outputs=tuple(place[id(t)] for t in outputs),
        specs={place[id(t)]: (t.shape, t.dtype) for _, tensors, _, out in tape for t in (*tensors, out)},
    )


# ----- fusion: a pass over the graph -----


def fused(graph: Graph) -> Graph:
    """The graph with each pair of ops that `_fusion` knows, where the first one's output feeds only the
    second, replaced by the fused op (ops.py): one call instead of two or three, the same numbers.

    The fused op runs forward where the second one did (every input is ready by then) and backward where
    the first one did, so the gradients of the first one's inputs are summed in the eager order; the second
    one's other inputs must then need no gradient, or be leaves. Its inputs' shapes were checked by
    `_fusion`, so its backward gives arrays of exactly those shapes (`Node.exact`)."""
    uses = Counter(graph.outputs)
    for node in graph.forward:
        uses.update(node.inputs)
    maker: dict[int, int] = {}  # place -> index in `forward` of the node that makes it
    forward: list[Node | None] = []
    backward: list[Node | None] = list(graph.backward)
    turn = {id(node): i for i, node in enumerate(backward)}  # a node's index in the backward order

    def made(place: int) -> Node | None:
        return forward[maker[place]] if place in maker else None

    for node in graph.forward:
        first = made(node.inputs[0]) if node.inputs and uses[node.inputs[0]] == 1 else None
        rule = None
        if first is not None and (id(first) in turn) == (id(node) in turn):
            rule = _fusion(first, node, graph.specs, uses, made)
        if first is None or rule is None:
            maker[node.output] = len(forward)
            forward.append(node)
            continue
        together, absorbed = rule
        for gone in (first, *absorbed):
            forward[maker[gone.output]] = None  # (dropped below; indices stay valid meanwhile)
        maker[node.output] = len(forward)
        forward.append(together)
        if id(node) in turn:
            i = turn.pop(id(first))
            for gone in (node, *absorbed):
                if id(gone) in turn:  # (an absorbed op may need no gradient: a frozen weight's penalty)
                    backward[turn.pop(id(gone))] = None
            backward[i] = together
            turn[id(together)] = i
    return replace(
        graph,
        forward=tuple(node for node in forward if node is not None),
        backward=tuple(node for node in backward if node is not None),
    )


def _fusion(first: Node, second: Node, specs: dict, uses: Counter, made: Callable) -> tuple[Node, list[Node]] | None:
    """The fused node that computes `second(first(...), ...)` and the other nodes it absorbs, or None.
    `made(place)` is the node that made a place (None for inputs and leaves).

    - `MatMul` then `Add` of a bias: `x @ w + b` is `Affine(x, w, b)` (x, w: 2-D; b: (out,));
    - `Affine` then `MeanSquaredError`: `mse(x @ w + b, target)` is `AffineMSE(x, w, b, target)`;
    - `AffineMSE` plus an `L2Penalty` of its own weight (and of nothing else, used nowhere else):
      `AffineMSE(x, w, b, target, l2=l2)`.
    """
    kinds = (first.op, second.op)
    if kinds not in ((ops.MatMul, ops.Add), (ops.Affine, ops.MeanSquaredError), (ops.AffineMSE, ops.Add)):
        return None
    (x, w), other, pred = first.inputs[:2], second.inputs[1], first.output
    if kinds == (ops.AffineMSE, ops.Add):
        penalty = made(other)
        if penalty is None or penalty.op is not ops.L2Penalty or penalty.inputs != (w,):
            return None
        if uses[other] != 1 or uses[w] != 2:
            # the weight's gradient must have just these two terms, to be summed as eagerly (and so a
            # second penalty of it, after the first was taken in, stays an op of its own)
            return None
        return replace(first, options={"l2": penalty.options["l2"]}, output=second.output), [penalty]
    if made(other) is not None and second.needs_input_grad[1]:
        return None  # its gradient would come at the first op's turn: too late for the op that made it
    if len(specs[x][0]) != 2 or len(specs[w][0]) != 2:
        return None
    if second.op is ops.Add:
        bias_spec = ((specs[w][0][1],), specs[pred][1])  # (out,), and the product's dtype: `Affine` adds in place
        if specs[other] != bias_spec:
            return None
        op: type[Function] = ops.Affine
    else:
        if specs[other] != specs[pred]:
            return None
        op = ops.AffineMSE
    needs = (*first.needs_input_grad, second.needs_input_grad[1])
    return Node(op, {}, (*first.inputs, other), second.output, needs, exact=True), []


# ----- code generation: the replay as one straight-line function of the graph -----


def replay_source(graph: Graph) -> str:
    """The replay of `graph` as Python source, `def replay(v0, ...)`: the ops' forward calls in order, then
    their backward calls in the eager order, each gradient summed into its input's; it returns the outputs'
    arrays and the (leaf, gradient) pairs. A loop over the nodes would look every value up in a list, every
    step; on a small model that costs as much as the arithmetic.

    Value k (see `Graph`) is `vk` and its gradient `gk`; op i of `forward` is made afresh at each replay,
    `opi = kindi()` (its class is `kindi`, its options `optionsi`, which inputs need a gradient
    `needsi`), so that what it keeps for backward lives in the replay's locals, and only `forward`,
    `backward` and `input_gradients` of the op are called. The text depends on the graph's shape alone (the
    objects are names), so that the same structure is compiled once (`_bytecode`)."""
    number = {id(node): i for i, node in enumerate(graph.forward)}
    backward_runs = {id(node) for node in graph.backward}
    lines = [f"def replay({', '.join(f'v{i}' for i in range(graph.input_count))}):"]
    lines += [f"    v{place} = leaf{place}.data" for place, _ in graph.leaves]
    for node in graph.forward:
        i, arguments = number[id(node)], ", ".join(f"v{k}" for k in node.inputs)
        keywords = f", **options{i}" if node.options else ""
        lines += [
            f"    op{i} = kind{i}()  # {node.op.__name__}",
            f"    op{i}.needs_input_grad = needs{i}",
            f"    v{node.output} = as_array(op{i}.forward({arguments}{keywords}))",
        ]
        if id(node) in backward_runs:
            one = "," if len(node.inputs) == 1 else ""
            lines.append(f"    op{i}.inputs, op{i}.output = ({arguments}{one}), v{node.output}")
    lines += _backward_lines(graph, number)[0]
    lines.append("    found = []")
    for place, _ in graph.grad_leaves:
        lines += [f"    if g{place} is not None:", f"        found.append((leaf{place}, g{place}))"]
    lines.append(f"    return [{', '.join(f'v{k}' for k in graph.outputs)}], found")
    return "\n".join(lines) + "\n"


def _backward_lines(graph: Graph, number: dict[int, int]) -> tuple[list[str], set[int]]:
    """The replay's backward pass, and the places whose every gradient part comes from an exact (fused) op:
    a fresh array no one else holds, which a leaf may keep as its .grad without a copy (any other op may
    hand out a shared one). A gradient's first part is assigned, later ones added to it (every tensor
    visited got at least one from its users, which the eager order visits first); every op but the loss's
    runs only if a gradient came in (an op's backward may give None), so the variables first set inside
    such a block are made None beforehand. Each gradient is dropped once used, as the eager walk drops it."""
    root = graph.outputs[0]
    body = [f"    g{root} = seed.copy()"]
    first_set_in_a_block: list[int] = []
    assigned, fresh = {root}, {root}
    for node in graph.backward:
        op, place = f"op{number[id(node)]}", node.output
        indent = "    " if place == root else "        "
        if place != root:
            body.append(f"    if g{place} is not None:")
        call = f"{op}.backward(g{place})"
        body.append(f"{indent}grads = {call if node.exact else f'{op}.input_gradients({call})'}")
        for i, parent in enumerate(node.inputs):
            if not node.needs_input_grad[i]:
                continue
            if parent in assigned:
                body.append(f"{indent}if grads[{i}] is not None:")
                body.append(f"{indent}    g{parent} = grads[{i}] if g{parent} is None else g{parent} + grads[{i}]")
                fresh -= set() if node.exact else {parent}
            else:
                body.append(f"{indent}g{parent} = grads[{i}]")
                assigned.add(parent)
                first_set_in_a_block += [] if place == root else [parent]
                fresh |= {parent} if node.exact else set()
        body.append(f"{indent}g{place} = None")
    return [f"    g{place} = None" for place in sorted(first_set_in_a_block)] + body, fresh


def compiled_replay(graph: Graph, seed: np.ndarray) -> Callable[..., tuple[list[Any], list[tuple]]]:
    """`replay_source(graph)` made a function, its names bound to the graph's objects; `seed` is d loss / d
    loss (copied at each replay)."""
    namespace: dict[str, Any] = {"as_array": _as_array, "seed": seed}
    namespace.update({f"leaf{place}": leaf for place, leaf in graph.leaves})
    for i, node in enumerate(graph.forward):
        namespace[f"kind{i}"], namespace[f"options{i}"], namespace[f"needs{i}"] = (
            node.op,
            node.options,
            node.needs_input_grad,
        )
    exec(_bytecode(replay_source(graph)), namespace)
    return namespace["replay"]


class _Recording:
    """One recorded step: its `graph` (fused), the compiled `replay`, and what it assumed (the guards).
    `op_kinds` are the ops as applied, before fusion (for the first replay's check)."""

    def __init__(
        self, tape: list[tuple], inputs: list[Tensor], outputs: list[Tensor], visits: list[Tensor], watched: list[Any]
    ):
        graph = recorded(tape, inputs, outputs, visits)
        self.op_kinds = [node.op for node in graph.forward]
        self.graph = fused(graph)
        self.leaves = list(graph.leaves)
        # the guards this recording holds under (see the module docstring and `holds`)
        self.leaf_specs = _leaf_specs([t for _, t in self.leaves])
        self.leaf_state = [(t, t.requires_grad, t.data) for _, t in self.leaves]  # (kept: their ids stay theirs)
        self.module_tensors = _module_tensors(watched)
        self.structure_version = nn.Module.structure_version
        self.watched = watched  # the values fn read when recorded (alive while recorded: their ids in keys stay theirs)
        self.checked = False  # whether a replay has been checked against an eager run (CapturedStep does it once)
        self.guard: Callable[..., bool] | None = None  # see `_write_guard`
        loss = outputs[0].data
        self.replay = compiled_replay(self.graph, np.ones(loss.shape, loss.dtype))
        _, fresh = _backward_lines(self.graph, {id(node): i for i, node in enumerate(self.graph.forward)})
        self.fresh_leaves = {id(leaf) for place, leaf in self.graph.grad_leaves if place in fresh}

    @property
    def source(self) -> str:
        """The replay's source (`replay_source`)."""
        return replay_source(self.graph)

    def holds(self, values: list[Any], fixed: list[Any]) -> bool:
        """Whether what this recording assumed of the tensors it reads still holds: the same of them
        require grad, with the same shapes and dtypes, and (when a Module's attributes were assigned
        since) the Modules among the values fn reads (`values`, `fixed`) still hold the same tensors."""
        for t, requires_grad, data in self.leaf_state:
            if t.requires_grad is not requires_grad or t.data is not data:  # (the common case: neither changed)
                if _leaf_specs([t for _, t in self.leaves]) != self.leaf_specs:
                    return False
                self.leaf_state = [(t, t.requires_grad, t.data) for _, t in self.leaves]
                break
        if self.structure_version != nn.Module.structure_version:
            now = _module_tensors(values + fixed)
            if len(now) != len(self.module_tensors) or any(a is not b for a, b in zip(now, self.module_tensors)):
                return False
            self.structure_version = nn.Module.structure_version
        return True

    def lets_through(self, inputs: tuple[Any, ...] | list[Any]) -> bool:
        """Whether the guard (`_write_guard`) lets a call with these inputs replay this recording at once."""
        try:
            return self.guard is not None and self.guard(*inputs)
        except (TypeError, ValueError):  # another number of inputs; a closure cell not bound
            return False


def _check_leaf(t: Tensor, inputs: list[Tensor]) -> None:
    """A tensor that no op of the step made must be a parameter or a constant, not a value the replay
    would freeze."""
    if t._ctx is not None:
        raise RuntimeError(
            "capture_step: fn uses a tensor that was computed outside it, with a graph of its own; "
            "compute it inside fn (the replay would not send a gradient through it)"
        )
    if any(np.may_share_memory(t.data, x.data) for x in inputs):
        raise RuntimeError(
            "capture_step: fn made a tensor from its input's data outside tinygrad_lr's ops (e.g. "
            "tl.Tensor(xb.data)); the replay would freeze it. Use the input tensor itself"
        )


def _leaves(tape: list[tuple], inputs: list[Tensor], outputs: list[Tensor]) -> list[Tensor]:
    """The tensors a step reads that no op of its tape made and that are not its inputs (parameters and
    constants), each once, in the order the ops first read them."""
    made = {id(t) for t in inputs} | {id(out) for _, _, _, out in tape}
    found: dict[int, Tensor] = {}
    for t in [t for _, tensors, _, _ in tape for t in tensors] + outputs:
        if id(t) not in made:
            found.setdefault(id(t), t)
    return list(found.values())


def _leaf_specs(leaves: list[Tensor]) -> list[tuple]:
    return [(t.requires_grad, t.data.shape, t.data.dtype) for t in leaves]


class CapturedStep:
    """A training step recorded on its first call (per input shapes) and replayed after; see the module.

    `fn(*inputs)` returns the loss (a scalar Tensor), or a tuple whose first item is the loss and
    whose others are Tensors to read back. Calling the step does `optimizer.zero_grad()`, the
    forward and backward of `fn`, and `optimizer.step()` (`optimizer.safe_step(loss)` with
    `safe=True`), and returns the loss as a float (a tuple: the loss, then the other outputs'
    arrays). Each parameter's `.grad` holds the step's gradient afterwards, as in eager mode.
    """

    MAX_RECORDINGS = 16  # per step; the oldest goes first (a schedule may try many values of a number)

    def __init__(self, fn: Callable[..., Any], optimizer: Any, safe: bool = False):
        if not callable(fn):
            raise TypeError(f"capture_step: fn must be callable, got {type(fn).__name__}")
        if not callable(getattr(optimizer, "step", None)):
            raise TypeError(f"capture_step: optimizer must be a tl.optim optimizer, got {type(optimizer).__name__}")
        self.fn, self.optimizer, self.safe = fn, optimizer, safe
        self.recordings: dict[tuple, _Recording] = {}
        self._reads = _what_fn_reads(fn)
        self._by_value = True  # whether the values fn reads can be the keys of its recordings themselves
        self._guarded: list[_Recording] = []  # the recordings with a guard (`_write_guard`), each tried in turn
        self._turn = threading.Lock()

    def __call__(self, *inputs: Any) -> Any:
        with self._turn:  # one whole step at a time (the optimizer's, and the recordings' bookkeeping)
            for recording in self._guarded:
                if recording.lets_through(inputs):
                    break
            else:
                return self._step(inputs)
            self.optimizer.zero_grad()
            outputs, found = recording.replay(*inputs)
            return self._finish(outputs, found, recording.fresh_leaves)

    def _step(self, inputs: tuple[Any, ...]) -> Any:
        """A call that no recording's guard let through: the inputs and the values fn reads looked up among
        the recordings (recorded again if none holds), the first replay checked, the guard written."""
        self.optimizer.zero_grad()  # first, as in the eager step: also when fn or the grad mode then fails
        if not tensor._mode.grad_enabled:
            raise RuntimeError(
                "capture_step: called inside no_grad(), where no graph is made and no gradient can be taken; "
                "call it outside no_grad(), as loss.backward() must be"
            )
        arrays = [_input_array(x) for x in inputs]
        values = self._reads.read()
        specs = tuple([(a.shape, a.dtype) for a in arrays])
        recording = None
        if self._by_value:  # the values themselves: numbers and strings by value, objects by identity
            key = (specs, tuple(values))
            try:
                recording = self.recordings.get(key)
            except TypeError:  # an unhashable value (a list, an array): from now on, keys from _guard_key
                self._by_value = False
        if not self._by_value:
            key = (specs, tuple([_guard_key(value) for value in values]))
            recording = self.recordings.get(key)
        if recording is not None and not recording.holds(values, self._reads.fixed):
            del self.recordings[key]
            recording = None
        if recording is None:
            outputs, found = self._record(key, [Tensor(a) for a in arrays], values + self._reads.fixed)
            fresh: Collection[int] = ()  # (the eager walk's gradients)
        else:
            if recording.checked:
                outputs, found = recording.replay(*arrays)
            else:
                outputs, found = self._checked_replay(recording, arrays)
                recording.checked = True
            fresh = recording.fresh_leaves
            if not recording.lets_through(arrays):
                recording.guard = _write_guard(self._reads, arrays, values, recording)
        self._guarded = [r for r in self.recordings.values() if r.guard is not None]
        return self._finish(outputs, found, fresh)

    def _finish(self, outputs: list[Any], found: list[tuple], fresh: Collection[int]) -> Any:
        """The step after its forward and backward: the gradients into `.grad`, the optimizer's step."""
        accumulate_grads(found, fresh)
        loss = outputs[0].item()
        if self.safe:
            self.optimizer.safe_step(loss)
        else:
            self.optimizer.step()
        return (loss, *outputs[1:]) if len(outputs) > 1 else loss

    def _eager(
        self, tensors: list[Tensor], tape: list | None = None, visits: list | None = None
    ) -> tuple[list[Any], list[tuple]]:
        """`fn` run as usual (its ops recorded on `tape` if given): its outputs, and the (leaf, gradient)
        pairs of its backward pass (whose order of visits goes to `visits` if given)."""
        previous, tensor._mode.tape = tensor._mode.tape, tape
        try:
            result = self.fn(*tensors)
        finally:
            tensor._mode.tape = previous
        outputs = list(result) if isinstance(result, tuple) else [result]
        for i, out in enumerate(outputs):
            if not isinstance(out, Tensor):
                raise TypeError(f"capture_step: fn must return Tensors; output {i} is a {type(out).__name__}")
        loss = outputs[0]
        if loss.data.size != 1 or loss._ctx is None:
            # (no graph is the RuntimeError of backward(), as when every parameter is frozen; a shape, misuse)
            raise (ValueError if loss.data.size != 1 else RuntimeError)(
                f"capture_step: fn's first output must be the loss, a one-element Tensor that depends on the "
                f"parameters; got shape {loss.shape}" + ("" if loss._ctx else ", computed by no op")
            )
        with no_grad():
            found = backpropagate(loss, np.ones(loss.shape, loss.dtype), create_graph=False, visits=visits)
        return outputs, found

    def _record(self, key: tuple, tensors: list[Tensor], values: list[Any]) -> tuple[list[Any], list[tuple]]:
        tape: list[tuple] = []
        visits: list[Tensor] = []
        outputs, found = self._eager(tensors, tape, visits)
        if len(self.recordings) >= self.MAX_RECORDINGS:
            del self.recordings[next(iter(self.recordings))]
        self.recordings[key] = _Recording(tape, tensors, outputs, visits, values)
        return [out.data for out in outputs], found

    def _checked_replay(self, recording: _Recording, arrays: list[np.ndarray]) -> tuple[list[Any], list[tuple]]:
        """The first replay of a recording, which must give what `fn` gives eagerly, to the bit. (The eager
        run goes first and its graph is dropped before the replay makes its arrays: on a large batch,
        a step's peak memory stays that of one run.)"""
        tape: list[tuple] = []
        tensors = [Tensor(a) for a in arrays]
        eager_outputs, eager_found = self._eager(tensors, tape)
        expected = [out.data for out in eager_outputs]
        cause = _cause_of_a_difference(recording, tape, tensors, eager_outputs)
        del eager_outputs, tape
        outputs, found = recording.replay(*arrays)
        _check_same((expected, eager_found), (outputs, found), cause)
        return outputs, found


def _cause_of_a_difference(recording: _Recording, tape: list[tuple], inputs: list[Tensor], outputs: list) -> str:
    """What an eager run of fn did otherwise than the recorded run, as the words of an error ("" if nothing
    shows): other ops (a Python branch on a value), or a constant with another value (a number or an
    array computed from the data outside tinygrad_lr's ops)."""
    kinds = [type(ctx) for ctx, _, _, _ in tape]
    if kinds != recording.op_kinds:
        at = next((i for i, (a, b) in enumerate(zip(kinds, recording.op_kinds)) if a is not b), None)
        where = (
            f"op {at} is {kinds[at].__name__}, recorded as {recording.op_kinds[at].__name__}"
            if at is not None
            else f"{len(kinds)} ops, {len(recording.op_kinds)} recorded"
        )
        return (
            f"fn applied other ops on these inputs than when it was recorded ({where}): a Python branch on a "
            "value (an if on a tensor's value, a choice made with .item() or NumPy) cannot be replayed"
        )
    for now, (_, then) in zip(_leaves(tape, inputs, outputs), recording.leaves):
        if not now.requires_grad and not then.requires_grad and not _identical(now.data, then.data):
            return (
                f"a constant of shape {now.shape} that fn made has another value on these inputs than when it "
                "was recorded: it was computed from the data outside tinygrad_lr's ops (NumPy on an input's "
                "values, .item(), float() of a tensor); compute it with tinygrad_lr's ops inside fn"
            )
    return ""


def _check_same(eager: tuple[list[Any], list[tuple]], replayed: tuple[list[Any], list[tuple]], cause: str = "") -> None:
    """Eager and replayed (outputs' arrays, (leaf, gradient) pairs) must be the same, to the bit; else an
    error that says what differed, and why when `cause` (found by `_cause_of_a_difference`) says."""
    (expected, eager_found), (outputs, found) = eager, replayed
    differs = None
    for i, (out, replayed_out) in enumerate(zip(expected, outputs)):
        if not _identical(out, replayed_out):
            differs = "the loss" if i == 0 else f"output {i}"
            break
    if differs is None:
        eager_grads = {id(leaf): g for leaf, g in eager_found}
        replayed_grads = {id(leaf): (leaf, g) for leaf, g in found}
        for leaf, g in eager_found:
            if id(leaf) not in replayed_grads or not _identical(g, replayed_grads[id(leaf)][1]):
                differs = f"the gradient of a tensor of shape {leaf.shape}"
                break
        for leaf, _ in found:
            if differs is None and id(leaf) not in eager_grads:
                differs = f"the gradient of a tensor of shape {leaf.shape}"
    if differs is not None:
        raise RuntimeError(
            f"capture_step: replaying the recorded step gave other numbers than running fn ({differs} differs)"
            + (f"; {cause}" if cause else "; fn must reach its inputs only through tinygrad_lr's ops")
            + ". Run this step eagerly instead"
        )


@functools.lru_cache(maxsize=256)
def _bytecode(source: str) -> types.CodeType:
    """`source` compiled, under a file name of its own that `linecache` knows, so that a traceback through
    a replay (or a guard) shows the generated line. Python's compiler takes some 100 µs for a step's replay,
    which the same model gets again in every fit (and every fold of a cross-validation), so the code is kept
    by its text."""
    name = f"<captured step {hashlib.sha1(source.encode()).hexdigest()[:12]}>"
    linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)  # (no mtime: kept)
    return compile(source, name, "exec")


def _as_array(value: Any) -> np.ndarray:
    """An op's output as `Function.apply` stores it: a floating array as it is, anything else through a Tensor."""
    return value if type(value) is np.ndarray and value.dtype.kind == "f" else Tensor(value).data


def _input_array(x: Any) -> np.ndarray:
    """An input of the step as the array a Tensor of it would hold (a floating array as it is)."""
    if isinstance(x, Tensor) and x.requires_grad:
        raise ValueError("capture_step: the step's inputs are data; they must not require grad")
    return _as_array(x)


class _Reads:
    """The values a step's `fn` reads from outside: its closure cells and the globals it names, read
    anew at every call, and the values that cannot change (a bound method's object, defaults), kept.
    `read()` gives them as a list: the changing ones first (None for a name not bound)."""

    def __init__(self, cells: list[Any], names: list[tuple[dict[str, Any], str]], fixed: list[Any]):
        self.cells, self.names, self.fixed = cells, names, fixed

    def read(self) -> list[Any]:
        try:
            values = list(map(_contents, self.cells))
        except ValueError:  # a cell not bound yet
            values = [_cell_value(cell) for cell in self.cells]
        values += [namespace.get(name) for namespace, name in self.names]
        return values


def _what_fn_reads(fn: Callable[..., Any]) -> _Reads:
    """What `fn` reads from outside (see `_Reads`): its closure, its defaults and the globals it names,
    and, through the functions among them, those of the functions it calls, apart from tinygrad_lr's own.
    """
    reads = _Reads([], [], [])
    seen: set[int] = set()
    pending: list[Any] = [fn]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, types.MethodType):
            reads.fixed.append(item.__self__)
            pending += [item.__self__, item.__func__]
        library = item is not fn and (getattr(item, "__module__", None) or "").startswith("tinygrad_lr")
        if not isinstance(item, types.FunctionType) or library:
            continue
        reads.fixed += item.__defaults__ or ()
        pending += item.__defaults__ or ()
        for cell in item.__closure__ or ():
            if not any(cell is known for known in reads.cells):  # (functions of one scope share its cells)
                reads.cells.append(cell)
                pending.append(_cell_value(cell))
        for name in sorted(_global_names(item.__code__) & item.__globals__.keys()):
            if not any(namespace is item.__globals__ and known == name for namespace, known in reads.names):
                reads.names.append((item.__globals__, name))
                pending.append(item.__globals__[name])
    return reads


_contents = operator.attrgetter("cell_contents")


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # not bound yet
        return None


def _global_names(code: types.CodeType) -> set[str]:
    """The names a code object (and the functions written inside it) may read as globals."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


def _write_guard(
    reads: _Reads, arrays: list[np.ndarray], values: list[Any], recording: _Recording
) -> Callable[..., bool]:
    """The recording's guard as one generated expression, `guard(*inputs) -> bool`: true only when a call
    with these inputs would find this recording by its key and `recording.holds` would pass. It asks
    more than that (floating arrays given as they are; the very objects and arrays seen now, numbers of
    the same type), so a false answer only sends the call the long way, which looks the recording up
    and writes its guard again. Building the key of a call costs 1.5 µs; this, 0.4.
    """
    namespace: dict[str, Any] = {"ndarray": np.ndarray, "Module": nn.Module, "mode": tensor._mode}
    terms = []
    for i, a in enumerate(arrays):
        namespace[f"shape{i}"], namespace[f"dtype{i}"] = a.shape, a.dtype
        terms.append(f"type(x{i}) is ndarray and x{i}.shape == shape{i} and x{i}.dtype is dtype{i}")
    sources = [f"cell{i}.cell_contents" for i in range(len(reads.cells))]
    sources += [f"names{i}.get({name!r})" for i, (_, name) in enumerate(reads.names)]
    namespace.update({f"cell{i}": cell for i, cell in enumerate(reads.cells)})
    namespace.update({f"names{i}": names for i, (names, _) in enumerate(reads.names)})
    for i, (source, value) in enumerate(zip(sources, values)):
        namespace[f"value{i}"], namespace[f"type{i}"] = value, type(value)
        if type(value) in _BY_VALUE:  # (as a dict compares keys: the same object, or an equal one)
            terms.append(f"type(now{i} := {source}) is type{i} and (now{i} is value{i} or now{i} == value{i})")
        else:
            terms.append(f"{source} is value{i}")
    for i, (leaf, requires_grad, data) in enumerate(recording.leaf_state):
        namespace[f"leaf{i}"], namespace[f"requires_grad{i}"], namespace[f"data{i}"] = leaf, requires_grad, data
        terms.append(f"leaf{i}.requires_grad is requires_grad{i} and leaf{i}.data is data{i}")
    namespace["version"] = recording.structure_version
    terms += ["Module.structure_version == version", "mode.grad_enabled"]
    arguments = ", ".join(f"x{i}" for i in range(len(arrays)))
    source = f"def guard({arguments}):\n    return (\n        " + "\n        and ".join(terms) + "\n    )\n"
    exec(_bytecode(source), namespace)
    return namespace["guard"]


def _guard_key(value: Any) -> Any:
    """What a recording assumes of a value fn reads, when some are not hashable: a number or a string by
    its value, anything else by its identity (the recording keeps it alive, so the id is not reused).
    Numbers held in an object's attributes are not looked at: fit's settings (`steps.Compiled`) are
    frozen for that reason."""
    return value if type(value) in _BY_VALUE else ("id", id(value))


_BY_VALUE = frozenset([int, float, complex, str, bytes, bool, type(None), np.float64, np.float32, np.int64])


def _module_tensors(values: list[Any]) -> tuple[Tensor, ...]:
    """Every Tensor held by the Modules among `values` (parameters and frozen tensors alike)."""
    found: dict[int, Tensor] = {}
    for value in values:
        if isinstance(value, nn.Module):
            for module in value.modules():
                for _, child in module._children():
                    if isinstance(child, Tensor):
                        found.setdefault(id(child), child)
    return tuple(found.values())


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def capture_step(fn: Callable[..., Any], optimizer: Any, safe: bool = False) -> CapturedStep:
    """Record `fn`'s training step once, replay it on every later call (see `CapturedStep`)."""
    return CapturedStep(fn, optimizer, safe)
