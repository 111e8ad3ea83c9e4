"""tfcr.utils.aligned: arrays TensorFlow takes without a copy."""

import numpy as np

from tfcr.models.embed import embed
from tfcr.utils import aligned


def test_empty_is_aligned_with_the_shape_and_dtype_asked():
  for shape in [(3, 5), (1000, 64), (7,)]:
    array = aligned.empty(shape, np.float32)
    assert array.shape == shape and array.dtype == np.float32
    assert array.ctypes.data % aligned.ALIGNMENT == 0 and array.flags.c_contiguous


def test_as_tensor_shares_an_aligned_array_and_copies_any_other():
  array = aligned.empty((4, 3), np.float32)
  array[:] = np.arange(12, dtype=np.float32).reshape(4, 3)
  shared = aligned.as_tensor(array)
  array[2, 1] = -5.0  # seen through the tensor: the same memory
  assert shared.numpy()[2, 1] == -5.0
  np.testing.assert_array_equal(shared.numpy(), array)
  offset = aligned.empty((13,), np.float32)[1:].reshape(4, 3)  # 4 bytes off alignment
  offset[:] = 1.0
  copied = aligned.as_tensor(offset)
  offset[0, 0] = 9.0  # a copy does not see it (and TensorFlow never sees unaligned data)
  assert copied.numpy()[0, 0] == 1.0 and copied.shape == (4, 3)
  strided = aligned.as_tensor(array[:, ::2])  # not contiguous: copied, right values
  np.testing.assert_array_equal(strided.numpy(), array[:, ::2])


def test_embed_output_is_aligned():
  out = embed(lambda x: np.ones([len(x["i"]), 5], np.float32) * x["i"][:, None],
              {"i": np.arange(11, dtype=np.float32)}, batch_size=4)
  assert out.ctypes.data % aligned.ALIGNMENT == 0
  np.testing.assert_array_equal(out[:, 0], np.arange(11))
