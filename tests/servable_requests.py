"""Runs requests against an exported servable in a fresh process (no training state).

  python tests/servable_requests.py SAVED_MODEL REQUESTS.json OUT.npz

REQUESTS.json: a list of {"signature": ..., "inputs": {name: nested list}}. OUT.npz gets,
for request i, the arrays `i/<output name>` or `i/error` (the InvalidArgument message).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tfcr  # noqa: E402,F401  (first: it sets TF_USE_LEGACY_KERAS)  pylint: disable=g-import-not-at-top

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

DTYPES = {"user_id": tf.string, "condition": tf.string, "k": tf.int32, "filter": tf.string,
          "exclude": tf.string}


def main(saved_model, requests_path, out_path):
  if os.environ.get("LOAD_SCANN", "1") == "1":
    from tfcr.index.scann_cpu import load_scann_ops  # pylint: disable=g-import-not-at-top
    load_scann_ops()
  servable = tf.saved_model.load(saved_model)
  with open(requests_path) as f:
    requests = json.load(f)
  results = {}
  for i, request in enumerate(requests):
    fn = servable.signatures[request["signature"]]
    inputs = {name: tf.constant(value, DTYPES[name])
              for name, value in request["inputs"].items()}
    try:
      outputs = fn(**inputs)
      for name, value in outputs.items():
        value = value.numpy()
        results[f"{i}/{name}"] = value.astype(str) if value.dtype == object else value
    except tf.errors.InvalidArgumentError as e:
      results[f"{i}/error"] = np.array(e.message)
  np.savez(out_path, **results)


if __name__ == "__main__":
  main(*sys.argv[1:])
