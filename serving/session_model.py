"""A SavedModel loaded into a TF1-style Session, its signatures called as session callables.

This is how TF Serving runs a model (a SavedModelBundle's Session::Run), and for small
requests it is the cheapest way TensorFlow offers from Python:

* a callable handle of the Session (C++ `Session::MakeCallable`) binds a signature's feeds
  and fetches once; a call hands NumPy arrays to C++ and gets NumPy arrays back, with none
  of the eager path's per-call Python (argument binding, captured-input bookkeeping,
  tensor conversion both ways), nor `Session.make_callable`'s (`_session_callable`);
* with `inter_op_threads=-1` (ConfigProto's negative inter_op_parallelism_threads, the
  server's default) a call runs its ops on the calling thread. With a pool (TF's default,
  and the eager runtime's only mode) the ops hop between pool threads: on a 2-core
  machine ~0.2 ms of a 1 ms single query to a 1M-item ScaNN servable. A pool of one
  thread avoids the hops but makes concurrent calls queue behind each other; on the
  calling thread, concurrent requests still run side by side, one per server thread.

Measured with benchmarks/servable_pieces.py --mode=concurrency (docs/benchmarks.md).

Inputs are checked before the call, with a message naming the input: a Session would
otherwise cast a float64 feed to a float32 input silently, and report a wrong shape from
deep inside the graph.
"""

from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2

from serving.rest_codec import dtype_string

_INIT_SIGNATURE = "__saved_model_init_op"


def _shape_text(shape: tf.TensorShape) -> str:
  if shape.rank is None:
    return "<unknown rank>"
  return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]"


def _dtype_of(array: np.ndarray) -> tf.DType:
  if array.dtype.kind in "OSU":  # bytes / str objects: what every string input arrives as
    return tf.string
  return tf.as_dtype(array.dtype)


class _InputSpec:
  """A signature input's dtype and shape, checked against a NumPy array in plain Python
  (TensorShape's own comparison costs ~1 us per input, on every request)."""

  def __init__(self, dtype: tf.DType, shape: tf.TensorShape):
    self.dtype = dtype
    self.shape = shape
    self._string = dtype == tf.string
    self._numpy_dtype = None if self._string else np.dtype(dtype.as_numpy_dtype)
    self._rank = shape.rank
    self._fixed = ([] if shape.rank is None else
                   [(axis, size) for axis, size in enumerate(shape.as_list()) if size is not None])

  def accepts(self, array: np.ndarray) -> bool:
    if self._string:
      if array.dtype.kind not in "OSU":
        return False
    elif array.dtype != self._numpy_dtype:
      return False
    if self._rank is None:
      return True
    return array.ndim == self._rank and all(array.shape[a] == n for a, n in self._fixed)


class SessionSignature:
  """One signature of a `SessionModel`: `signature(inputs)` with a dict of NumPy arrays
  (every input, by alias) returns a dict of NumPy arrays (every output)."""

  def __init__(self, session: tf.compat.v1.Session, signature_def):
    self._order: List[str] = sorted(signature_def.inputs)
    self._names = frozenset(self._order)
    self._specs = []
    for alias in self._order:
      info = signature_def.inputs[alias]
      self._specs.append(_InputSpec(tf.as_dtype(info.dtype), tf.TensorShape(info.tensor_shape)))
    self._outputs: List[str] = sorted(signature_def.outputs)
    self._callable = _session_callable(
        session, [signature_def.inputs[alias].name for alias in self._order],
        [signature_def.outputs[alias].name for alias in self._outputs])

  def __call__(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    if inputs.keys() != self._names:
      missing = sorted(self._names - inputs.keys())
      extra = sorted(inputs.keys() - self._names)
      raise ValueError("Inputs do not match the signature: "
                       + "; ".join(part for part in (
                           f"missing {', '.join(missing)}" if missing else "",
                           f"unexpected {', '.join(extra)}" if extra else "") if part))
    arrays = []
    for alias, spec in zip(self._order, self._specs):
      array = inputs[alias]
      if not isinstance(array, np.ndarray):  # lists etc.: TF's own conversion, no casting
        array = tf.convert_to_tensor(array).numpy()
      if not spec.accepts(array):
        raise ValueError(
            f"Input {alias} expects {dtype_string(spec.dtype)} of shape "
            f"{_shape_text(spec.shape)}, got {dtype_string(_dtype_of(array))} of shape "
            f"{_shape_text(tf.TensorShape(array.shape))}")
      arrays.append(array)
    return dict(zip(self._outputs, self._callable(*arrays)))


def _session_callable(session: tf.compat.v1.Session, feeds: List[str], fetches: List[str]):
  """fn(*arrays) -> list of arrays, one per fetch: C++ `Session::MakeCallable`.

  `Session.make_callable` with feeds runs every call through `Session.run`'s Python (feed
  and fetch handling, dtype conversion checks): ~130 us of a call with this servable's 4
  inputs and 4 outputs, against ~8 us through the session's own callable handle (the path
  Keras 2 took in TF1 graphs; measured in docs/benchmarks.md). Falls back to make_callable
  where the handle cannot serve the signature: a TensorFlow without it, one tensor fed
  under two aliases, or an input fetched as an output (a TF1 signature may do both).
  """
  make = getattr(session, "_make_callable_from_options", None)
  if make is None or len(set(feeds)) != len(feeds) or set(feeds) & set(fetches):
    graph = session.graph
    return session.make_callable(fetches, [graph.get_tensor_by_name(n) for n in feeds])
  unique = list(dict.fromkeys(fetches))  # a tensor under two output aliases: fetched once
  options = config_pb2.CallableOptions(feed=feeds, fetch=unique)
  handle = make(options)
  if len(unique) == len(fetches):
    return handle
  position = [unique.index(name) for name in fetches]

  def with_repeats(*arrays):
    values = handle(*arrays)
    return [values[i] for i in position]

  return with_repeats


class SessionModel:
  """A SavedModel in its own graph and Session; `signatures` maps each runnable
  signature key to a `SessionSignature`, `signature_defs` is the MetaGraphDef's whole
  SignatureDef map (the init op's included).

  inter_op_threads / intra_op_threads: as ConfigProto's inter/intra_op_parallelism_threads
  (-1: a call's ops run on the calling thread; 0: TensorFlow's choice; N: a pool of N).
  """

  def __init__(self, path: str, tags: Sequence[str] = ("serve",), inter_op_threads: int = -1,
               intra_op_threads: int = 0):
    self.graph = tf.Graph()
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=inter_op_threads,
                                      intra_op_parallelism_threads=intra_op_threads)
    self.session = tf.compat.v1.Session(graph=self.graph, config=config)
    try:
      with self.graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), path)
      self.signature_defs = meta_graph.signature_def
      self.signatures: Dict[str, SessionSignature] = {
          key: SessionSignature(self.session, signature_def)
          for key, signature_def in self.signature_defs.items()
          if key != _INIT_SIGNATURE and _dense(signature_def)}
    except BaseException:
      self.session.close()
      raise

  def close(self) -> None:
    self.session.close()


def _dense(signature_def) -> bool:
  """Whether every input and output is a plain tensor (not sparse/composite)."""
  infos = list(signature_def.inputs.values()) + list(signature_def.outputs.values())
  return all(info.WhichOneof("encoding") == "name" for info in infos)
