"""Which models to serve, from flags or a `--model_config_file` (TF Serving's format).

A `ModelConfig` is one entry of TF Serving's `ModelServerConfig.model_config_list`: a
name, an absolute base path whose integer-named children are versions, a version policy
and version labels. `load_model_config_file` reads the text-format proto with the
`tensorflow_serving.config.model_server_config_pb2` module that tensorflow-serving-api
ships; `configs_from_proto` converts an already-parsed `ModelServerConfig` (e.g. from a
gRPC `HandleReloadConfigRequest`).

Errors are `ModelConfigError`, a `ServingError` (INVALID_ARGUMENT unless said otherwise)
carrying upstream's messages.
"""

import dataclasses
import os
import re
from typing import Dict, Iterable, List, Set, Tuple

from absl import logging
from google.protobuf import text_format
import grpc
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError

LATEST = "latest"
ALL = "all"
SPECIFIC = "specific"
TENSORFLOW_PLATFORM = "tensorflow"

_URI_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class ModelConfigError(ServingError, ValueError):
  """An invalid model config; `code` is INVALID_ARGUMENT unless given."""

  def __init__(self, message: str,
               code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
    super().__init__(code, message)


def is_absolute_path_or_uri(path: str) -> bool:
  """True for `/abs/path` and `scheme://...` (upstream's UriIsRelativePath negated)."""
  return bool(path) and (os.path.isabs(path) or bool(_URI_SCHEME.match(path)))


@dataclasses.dataclass
class ModelConfig:
  """One model to serve.

  Attributes:
    name: the model name clients use.
    base_path: absolute path (or URI) whose integer-named children are versions.
    version_policy: LATEST (the `num_versions` highest versions), ALL, or SPECIFIC
      (exactly `versions`).
    num_versions: for LATEST; values below 1 mean 1, as upstream.
    versions: for SPECIFIC.
    version_labels: label -> version, e.g. {"stable": 1, "canary": 2}.
  """
  name: str
  base_path: str
  version_policy: str = LATEST
  num_versions: int = 1
  versions: Tuple[int, ...] = ()
  version_labels: Dict[str, int] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not is_absolute_path_or_uri(self.base_path):
      raise ModelConfigError(
          f"Expected model {self.name} to have an absolute path or URI; "
          f"got base_path()={self.base_path}")
    if self.version_policy not in (LATEST, ALL, SPECIFIC):
      raise ModelConfigError(
          f"Unknown version policy {self.version_policy!r} for model {self.name}; "
          f"expected one of {LATEST}, {ALL}, {SPECIFIC}")
    self.num_versions = max(int(self.num_versions), 1)
    self.versions = tuple(sorted({int(v) for v in self.versions}))
    self.version_labels = {str(k): int(v) for k, v in self.version_labels.items()}

  def aspired_versions(self, on_disk: Iterable[int]) -> Set[int]:
    """The versions this policy wants served, given the versions found on disk."""
    on_disk = set(on_disk)
    if self.version_policy == ALL:
      return on_disk
    if self.version_policy == SPECIFIC:
      return on_disk & set(self.versions)
    return set(sorted(on_disk, reverse=True)[:self.num_versions])


def _platform_check(proto: model_server_config_pb2.ModelConfig) -> None:
  """Rejects non-TensorFlow platforms (upstream server_core.cc GetPlatform)."""
  platform = proto.model_platform
  if proto.model_type != model_server_config_pb2.MODEL_TYPE_UNSPECIFIED:
    if platform:
      raise ModelConfigError(
          "Illegal setting both ModelServerConfig::model_type (deprecated) "
          "and ModelServerConfig::model_platform.")
    if proto.model_type != model_server_config_pb2.TENSORFLOW:
      raise ModelConfigError(f"ModelServerConfig::model_type choice "
                             f"{proto.model_type} not supported.")
    platform = TENSORFLOW_PLATFORM
  # Upstream also rejects an empty platform; we default it to "tensorflow".
  if platform and platform != TENSORFLOW_PLATFORM:
    raise ModelConfigError(
        f"Model {proto.name} requests unsupported platform {platform}")


def config_from_proto(proto: model_server_config_pb2.ModelConfig) -> ModelConfig:
  """Converts one `tensorflow.serving.ModelConfig` message."""
  _platform_check(proto)
  policy = proto.model_version_policy
  which = policy.WhichOneof("policy_choice")
  kwargs = {}
  if which == "all":
    kwargs["version_policy"] = ALL
  elif which == "specific":
    kwargs.update(version_policy=SPECIFIC, versions=tuple(policy.specific.versions))
    if not policy.specific.versions:
      logging.warning("Model %s has a 'specific' version policy without versions; "
                      "nothing will be served", proto.name)
  elif which == "latest":
    kwargs["num_versions"] = policy.latest.num_versions
  return ModelConfig(name=proto.name, base_path=proto.base_path,
                     version_labels=dict(proto.version_labels), **kwargs)


def configs_from_proto(
    server_config: model_server_config_pb2.ModelServerConfig) -> List[ModelConfig]:
  """Converts a `ModelServerConfig`; only `model_config_list` is supported."""
  which = server_config.WhichOneof("config")
  if which is None:
    return []
  if which != "model_config_list":
    raise ModelConfigError(f"Unsupported ModelServerConfig choice {which}: only "
                           "model_config_list is supported", grpc.StatusCode.UNIMPLEMENTED)
  configs = [config_from_proto(c) for c in server_config.model_config_list.config]
  check_unique_names(configs)
  return configs


def check_unique_names(configs: Iterable[ModelConfig]) -> None:
  """Upstream ValidateModelConfigList: a model name may appear once."""
  seen = set()
  for config in configs:
    if config.name in seen:
      raise ModelConfigError(
          f"Illegal to list model {config.name} multiple times in config list")
    seen.add(config.name)


def parse_model_config_text(text: str) -> List[ModelConfig]:
  """Parses a text-format `tensorflow.serving.ModelServerConfig`."""
  proto = model_server_config_pb2.ModelServerConfig()
  try:
    text_format.Parse(text, proto)
  except text_format.ParseError as e:
    raise ModelConfigError(
        f"Error parsing text-format tensorflow.serving.ModelServerConfig: {e}") from e
  return configs_from_proto(proto)


def load_model_config_file(path: str) -> List[ModelConfig]:
  """Reads `--model_config_file`; raises ModelConfigError on any problem."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise ModelConfigError(f"Could not read model config file {path}: {e}",
                           grpc.StatusCode.NOT_FOUND
                           if isinstance(e, FileNotFoundError) else
                           grpc.StatusCode.INVALID_ARGUMENT) from e
  return parse_model_config_text(text)
