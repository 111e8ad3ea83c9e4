"""SessionModel: a SavedModel run through a Session's callables, checked before the call."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from serving.session_model import SessionModel

_THREADS = []  # thread ids seen inside the graph, by the numpy_function below


def _record_thread(x):
  _THREADS.append(threading.get_ident())
  return x


class _Scorer(tf.Module):
  """Inputs declared out of alphabetical order, of three dtypes, plus a captured
  variable and a hash table (initialised by the SavedModel's init op): a wrong feed
  order would fail on dtype or give other numbers."""

  def __init__(self):
    super().__init__()
    self.weights = tf.Variable([[1.0, -2.0], [0.5, 3.0]])
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(["a", "bb"]), tf.constant([1, 2])),
        default_value=-1)

  @tf.function(input_signature=[
      tf.TensorSpec([None, 2], tf.float32, name="x"),
      tf.TensorSpec([None], tf.string, name="label"),
      tf.TensorSpec([None], tf.int32, name="a_shift")])
  def serve(self, x, label, a_shift):
    return {"score": tf.linalg.matvec(self.weights, x) + tf.cast(a_shift, tf.float32)[:, None],
            "tag": tf.strings.join([label, "!"]),
            "label_id": self.table.lookup(label)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
  def where(self, x):
    return {"y": tf.numpy_function(_record_thread, [x], tf.float32)}


@pytest.fixture(scope="module")
def path(tmp_path_factory):
  module = _Scorer()
  path = str(tmp_path_factory.mktemp("scorer"))
  tf.saved_model.save(module, path, signatures={"serving_default": module.serve,
                                                "where": module.where})
  return path


@pytest.fixture(scope="module")
def model(path):
  return SessionModel(path)


def _inputs():
  return {"x": np.array([[1.0, 2.0], [0.0, -1.0], [4.0, 0.5]], np.float32),
          "label": np.array([b"a", b"bb", b""], object),
          "a_shift": np.array([0, 10, -1], np.int32)}


def test_outputs_match_numpy_and_the_eager_call(model, path):
  assert sorted(model.signatures) == ["serving_default", "where"]  # no init op
  inputs = _inputs()
  out = model.signatures["serving_default"](inputs)
  weights = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
  expected = inputs["x"] @ weights.T + inputs["a_shift"][:, None]
  np.testing.assert_allclose(out["score"], expected, rtol=1e-6)
  assert list(out["tag"]) == [b"a!", b"bb!", b"!"]
  assert list(out["label_id"]) == [1, 2, -1]  # the table was initialised
  eager = tf.saved_model.load(path).signatures["serving_default"](
      **{k: tf.constant(v) for k, v in inputs.items()})
  assert set(out) == set(eager)
  for name in eager:
    np.testing.assert_array_equal(out[name], eager[name].numpy())


def test_str_arrays_and_lists_are_accepted(model):
  inputs = _inputs()
  inputs["label"] = np.array(["a", "bb", ""])  # numpy unicode
  inputs["a_shift"] = [0, 10, -1]  # a list: TF's conversion (int32)
  out = model.signatures["serving_default"](inputs)
  assert list(out["label_id"]) == [1, 2, -1]


@pytest.mark.parametrize("name, value, message", [
    ("a_shift", np.array([0, 1, 2], np.int64),
     "Input a_shift expects int32 of shape [?], got int64 of shape [3]"),
    ("x", np.array([[1.0, 2.0]], np.float64),
     "Input x expects float of shape [?, 2], got double of shape [1, 2]"),
    ("x", np.zeros([3, 3], np.float32),
     "Input x expects float of shape [?, 2], got float of shape [3, 3]"),
    ("label", np.array(b"a", object),
     "Input label expects string of shape [?], got string of shape []"),
    ("label", np.array([1, 2, 3], np.int32),
     "Input label expects string of shape [?], got int32 of shape [3]"),
    ("a_shift", np.array(["0", "1", "2"]),
     "Input a_shift expects int32 of shape [?], got string of shape [3]"),
    ("x", np.zeros([3], np.float32),
     "Input x expects float of shape [?, 2], got float of shape [3]"),
])
def test_wrong_dtype_or_shape_names_the_input(model, name, value, message):
  inputs = _inputs()
  inputs[name] = value  # a Session would cast the float64 silently
  with pytest.raises(ValueError) as info:
    model.signatures["serving_default"](inputs)
  assert str(info.value) == message


def test_missing_and_extra_inputs(model):
  inputs = _inputs()
  del inputs["label"]
  inputs["z"] = np.zeros([3], np.float32)
  with pytest.raises(ValueError, match="missing label; unexpected z"):
    model.signatures["serving_default"](inputs)


@pytest.mark.parametrize("inter_op_threads, on_caller", [(-1, True), (2, False)])
def test_inter_op_threads_decides_where_ops_run(path, inter_op_threads, on_caller):
  model = SessionModel(path, inter_op_threads=inter_op_threads)
  try:
    caller = []

    def call():
      caller.append(threading.get_ident())
      model.signatures["where"]({"x": np.ones([2], np.float32)})
    del _THREADS[:]
    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert len(_THREADS) == 1
    assert (_THREADS[0] == caller[0]) == on_caller
  finally:
    model.close()


def test_tf1_signature_with_shared_tensors(tmp_path):
  """A TF1 SavedModel may map two output aliases to one tensor, two input aliases to one
  placeholder, or an output to an input: every alias still gets its value."""
  graph = tf.Graph()
  with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
    doubled = tf.multiply(x, 2.0, name="doubled")
    info = tf.compat.v1.saved_model.build_tensor_info
    shared_out = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
        inputs={"x": info(x)}, outputs={"a": info(doubled), "b": info(doubled)},
        method_name="tensorflow/serving/predict")
    echo = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
        inputs={"x": info(x)}, outputs={"c": info(x), "d": info(doubled)},
        method_name="tensorflow/serving/predict")
    shared_in = tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
        inputs={"p": info(x), "q": info(x)}, outputs={"y": info(doubled)},
        method_name="tensorflow/serving/predict")
    with tf.compat.v1.Session(graph=graph) as session:
      builder = tf.compat.v1.saved_model.Builder(str(tmp_path / "tf1"))
      builder.add_meta_graph_and_variables(
          session, ["serve"], signature_def_map={"serving_default": shared_out,
                                                 "shared_in": shared_in, "echo": echo})
      builder.save()
  model = SessionModel(str(tmp_path / "tf1"))
  value = np.array([1.5, -2.0], np.float32)
  out = model.signatures["serving_default"]({"x": value})
  assert sorted(out) == ["a", "b"]
  np.testing.assert_array_equal(out["a"], value * 2)
  np.testing.assert_array_equal(out["b"], value * 2)
  out = model.signatures["echo"]({"x": value})
  np.testing.assert_array_equal(out["c"], value)
  np.testing.assert_array_equal(out["d"], value * 2)
  out = model.signatures["shared_in"]({"p": value, "q": value})
  np.testing.assert_array_equal(out["y"], value * 2)
