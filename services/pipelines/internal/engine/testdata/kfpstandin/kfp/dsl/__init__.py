"""Stand-in for kfp.dsl: artifact types and Input/Output annotations (test fixture)."""
from typing import Generic, TypeVar

_PREFIXES = (("gs://", "/gcs/"), ("minio://", "/minio/"), ("s3://", "/s3/"))


def local_path(uri):
    """The local path KFP's executor derives from an artifact URI (artifact_types._get_path)."""
    for remote, local in _PREFIXES:
        if uri.startswith(remote):
            return local + uri[len(remote):]
    return uri


class Artifact:
    schema_title = "system.Artifact"

    def __init__(self, name="", uri="", metadata=None):
        self.name, self.uri, self.metadata = name, uri, dict(metadata or {})

    @property
    def path(self):
        return local_path(self.uri)


class Dataset(Artifact):
    schema_title = "system.Dataset"


class Model(Artifact):
    schema_title = "system.Model"


class Metrics(Artifact):
    schema_title = "system.Metrics"

    def log_metric(self, metric, value):
        self.metadata[metric] = value


T = TypeVar("T")


class Input(Generic[T]):
    pass


class Output(Generic[T]):
    pass


__all__ = ["Artifact", "Dataset", "Model", "Metrics", "Input", "Output", "local_path"]
