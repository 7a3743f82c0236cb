from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HaveBlobsRequest(_message.Message):
    __slots__ = ("project", "sha256")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    project: str
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project: _Optional[str] = ..., sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class BlobState(_message.Message):
    __slots__ = ("sha256", "present", "offset")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    present: bool
    offset: int
    def __init__(self, sha256: _Optional[str] = ..., present: _Optional[bool] = ..., offset: _Optional[int] = ...) -> None: ...

class HaveBlobsReply(_message.Message):
    __slots__ = ("blobs", "chunk_bytes")
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[BlobState]
    chunk_bytes: int
    def __init__(self, blobs: _Optional[_Iterable[_Union[BlobState, _Mapping]]] = ..., chunk_bytes: _Optional[int] = ...) -> None: ...

class BlobChunk(_message.Message):
    __slots__ = ("project", "sha256", "size", "offset", "data")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    project: str
    sha256: str
    size: int
    offset: int
    data: bytes
    def __init__(self, project: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadAck(_message.Message):
    __slots__ = ("committed", "complete")
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    committed: int
    complete: bool
    def __init__(self, committed: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class ManifestEntry(_message.Message):
    __slots__ = ("path", "sha256", "size", "ref_uri", "ref_digest")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REF_URI_FIELD_NUMBER: _ClassVar[int]
    REF_DIGEST_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    size: int
    ref_uri: str
    ref_digest: str
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., ref_uri: _Optional[str] = ..., ref_digest: _Optional[str] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("project", "name", "type", "description", "metadata_json", "entries", "digest", "aliases", "run_id", "direction")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    type: str
    description: str
    metadata_json: str
    entries: _containers.RepeatedCompositeFieldContainer[ManifestEntry]
    digest: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    run_id: str
    direction: str
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., metadata_json: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[ManifestEntry, _Mapping]]] = ..., digest: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., run_id: _Optional[str] = ..., direction: _Optional[str] = ...) -> None: ...

class ArtifactVersion(_message.Message):
    __slots__ = ("project", "name", "type", "description", "version", "digest", "metadata_json", "size", "file_count", "created_by_run", "created_at_us", "aliases", "entries", "existed")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    type: str
    description: str
    version: int
    digest: str
    metadata_json: str
    size: int
    file_count: int
    created_by_run: str
    created_at_us: int
    aliases: _containers.RepeatedScalarFieldContainer[str]
    entries: _containers.RepeatedCompositeFieldContainer[ManifestEntry]
    existed: bool
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., version: _Optional[int] = ..., digest: _Optional[str] = ..., metadata_json: _Optional[str] = ..., size: _Optional[int] = ..., file_count: _Optional[int] = ..., created_by_run: _Optional[str] = ..., created_at_us: _Optional[int] = ..., aliases: _Optional[_Iterable[str]] = ..., entries: _Optional[_Iterable[_Union[ManifestEntry, _Mapping]]] = ..., existed: _Optional[bool] = ...) -> None: ...

class ArtifactRef(_message.Message):
    __slots__ = ("project", "name", "ref")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    project: str
    name: str
    ref: str
    def __init__(self, project: _Optional[str] = ..., name: _Optional[str] = ..., ref: _Optional[str] = ...) -> None: ...

class UseRequest(_message.Message):
    __slots__ = ("artifact", "run_project", "run_id")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    RUN_PROJECT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    artifact: ArtifactRef
    run_project: str
    run_id: str
    def __init__(self, artifact: _Optional[_Union[ArtifactRef, _Mapping]] = ..., run_project: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("project", "sha256", "offset")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    project: str
    sha256: str
    offset: int
    def __init__(self, project: _Optional[str] = ..., sha256: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...
