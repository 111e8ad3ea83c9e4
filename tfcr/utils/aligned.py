"""NumPy arrays that TensorFlow can take without a copy.

A float table handed to TensorFlow as a NumPy array is copied, and the eager conversion
held two copies at its peak (measured at 3M items x 64: +1.4 GiB for a 0.7 GiB table),
on top of the array itself. TensorFlow can instead wrap the array's own memory (DLPack)
when it is aligned as its kernels require (Eigen's 64 bytes); NumPy aligns large arrays
to 16 bytes only. So tables that will be handed to TensorFlow (the catalog's embeddings,
for the ScaNN build) are allocated aligned, and `as_tensor` wraps them.
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

ALIGNMENT = 64  # bytes: EIGEN_MAX_ALIGN_BYTES, the most any TensorFlow build checks for


def empty(shape: Sequence[int], dtype=np.float32) -> np.ndarray:
  """np.empty(shape, dtype), its data aligned to ALIGNMENT bytes."""
  dtype = np.dtype(dtype)
  size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  raw = np.empty(size + ALIGNMENT, np.uint8)
  start = (-raw.ctypes.data) % ALIGNMENT
  return raw[start:start + size].view(dtype).reshape(shape)


def is_aligned(array: np.ndarray) -> bool:
  return array.ctypes.data % ALIGNMENT == 0


def as_tensor(array: np.ndarray) -> tf.Tensor:
  """A tensor of `array`'s values: its own memory, shared, when it is an aligned
  C-contiguous array of a plain dtype (the tensor then keeps the array alive; do not
  write to the array while the tensor is in use); otherwise a copy."""
  if (isinstance(array, np.ndarray) and array.size and array.flags.c_contiguous
      and is_aligned(array) and array.dtype.kind in "fiub"):
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
  return tf.convert_to_tensor(array)
