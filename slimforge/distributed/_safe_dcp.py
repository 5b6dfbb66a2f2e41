"""Reading torch.distributed.checkpoint folders without running code they name.

DCP stores its ``.metadata`` with ``pickle`` and its non-tensor items with ``torch.save``, and
reads them back with ``pickle.load`` and ``torch.load(weights_only=False)``: a crafted
checkpoint folder could run code on ``--resume``. Here the metadata is read by an unpickler
that resolves only DCP's own metadata classes (Python's "restricting globals" recipe), and
byte items with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import torch
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint.metadata import StorageMeta

from slimforge.errors import ArtifactError

_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata", "TensorStorageMetadata", "BytesStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
        "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
    "torch": {"Size"},
}


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _METADATA_CLASSES.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise ArtifactError(f"the distributed checkpoint's metadata refers to {module}.{name}, which DCP metadata never holds; "
                            "the checkpoint is corrupt or crafted, and was not loaded.")


class SafeReader(FileSystemReader):
    """A FileSystemReader whose metadata cannot name code."""

    def read_metadata(self, *args: Any, **kwargs: Any):
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as stream:
            try:
                metadata = _MetadataUnpickler(stream).load()
            except ArtifactError as exc:
                raise ArtifactError(f"{path}: {exc}") from None
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
                raise ArtifactError(f"{path} is not readable distributed-checkpoint metadata ({exc}).") from None
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default load planner, reading non-tensor items with ``weights_only=True``."""

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        try:
            item = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ArtifactError(f"a non-tensor item of the distributed checkpoint ({read_item.dest_index.fqn}) "
                                f"is not plain data ({str(exc).splitlines()[0]}); it was not loaded.") from None
        if self.flatten_state_dict:
            from torch.distributed.checkpoint._traverse import set_element  # as DefaultLoadPlanner.load_bytes does

            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], item)
        else:
            self.state_dict[read_item.dest_index.fqn] = item


def load(state: dict[str, Any], path: str) -> None:
    """``torch.distributed.checkpoint.load(state, checkpoint_id=path)``, without unpickling code."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    reader = SafeReader(path)
    reader.read_metadata()  # checked here first: inside dcp.load a refusal comes back wrapped in DCP's own traceback
    try:
        dcp.load(state, storage_reader=reader, planner=SafeLoadPlanner())
    except CheckpointException as exc:
        wrapped = [f[0] if isinstance(f, tuple) else f for f in exc.failures.values()]  # (exception, stack summary)
        refusals = [str(e) for e in wrapped if isinstance(e, ArtifactError)]
        if refusals:
            raise ArtifactError(refusals[0]) from None
        raise
