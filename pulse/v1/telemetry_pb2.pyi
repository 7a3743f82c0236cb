from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Batch(_message.Message):
    __slots__ = ("project", "run_id", "stream_id", "seq", "replay", "events", "scalars", "system", "histograms", "media", "console")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SCALARS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAMS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_FIELD_NUMBER: _ClassVar[int]
    project: str
    run_id: str
    stream_id: str
    seq: int
    replay: bool
    events: _containers.RepeatedCompositeFieldContainer[Event]
    scalars: ScalarBlock
    system: SystemBlock
    histograms: _containers.RepeatedCompositeFieldContainer[Histogram]
    media: _containers.RepeatedCompositeFieldContainer[Media]
    console: _containers.RepeatedCompositeFieldContainer[ConsoleLine]
    def __init__(self, project: _Optional[str] = ..., run_id: _Optional[str] = ..., stream_id: _Optional[str] = ..., seq: _Optional[int] = ..., replay: _Optional[bool] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., scalars: _Optional[_Union[ScalarBlock, _Mapping]] = ..., system: _Optional[_Union[SystemBlock, _Mapping]] = ..., histograms: _Optional[_Iterable[_Union[Histogram, _Mapping]]] = ..., media: _Optional[_Iterable[_Union[Media, _Mapping]]] = ..., console: _Optional[_Iterable[_Union[ConsoleLine, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("start", "config", "summary", "finish", "heartbeat", "metric", "graph", "alert", "update")
    START_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    GRAPH_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    start: RunStart
    config: ConfigUpdate
    summary: SummaryUpdate
    finish: RunFinish
    heartbeat: Heartbeat
    metric: MetricDefinition
    graph: ModelGraph
    alert: Alert
    update: RunUpdate
    def __init__(self, start: _Optional[_Union[RunStart, _Mapping]] = ..., config: _Optional[_Union[ConfigUpdate, _Mapping]] = ..., summary: _Optional[_Union[SummaryUpdate, _Mapping]] = ..., finish: _Optional[_Union[RunFinish, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., metric: _Optional[_Union[MetricDefinition, _Mapping]] = ..., graph: _Optional[_Union[ModelGraph, _Mapping]] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ..., update: _Optional[_Union[RunUpdate, _Mapping]] = ...) -> None: ...

class RunStart(_message.Message):
    __slots__ = ("name", "group", "job_type", "tags", "notes", "config_json", "sweep_id", "created_at_us", "host", "resume", "metadata_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    group: str
    job_type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    notes: str
    config_json: str
    sweep_id: str
    created_at_us: int
    host: str
    resume: bool
    metadata_json: str
    def __init__(self, name: _Optional[str] = ..., group: _Optional[str] = ..., job_type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., notes: _Optional[str] = ..., config_json: _Optional[str] = ..., sweep_id: _Optional[str] = ..., created_at_us: _Optional[int] = ..., host: _Optional[str] = ..., resume: _Optional[bool] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class ConfigUpdate(_message.Message):
    __slots__ = ("config_json",)
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    config_json: str
    def __init__(self, config_json: _Optional[str] = ...) -> None: ...

class RunUpdate(_message.Message):
    __slots__ = ("name", "notes", "set_tags", "tags")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    SET_TAGS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    notes: str
    set_tags: bool
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., notes: _Optional[str] = ..., set_tags: _Optional[bool] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class SummaryUpdate(_message.Message):
    __slots__ = ("summary_json",)
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    summary_json: str
    def __init__(self, summary_json: _Optional[str] = ...) -> None: ...

class RunFinish(_message.Message):
    __slots__ = ("state", "exit_code", "error", "ts_us")
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TS_US_FIELD_NUMBER: _ClassVar[int]
    state: str
    exit_code: int
    error: str
    ts_us: int
    def __init__(self, state: _Optional[str] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ..., ts_us: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("ts_us",)
    TS_US_FIELD_NUMBER: _ClassVar[int]
    ts_us: int
    def __init__(self, ts_us: _Optional[int] = ...) -> None: ...

class MetricDefinition(_message.Message):
    __slots__ = ("name", "step_metric", "summary", "goal", "hidden")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_METRIC_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    step_metric: str
    summary: str
    goal: str
    hidden: bool
    def __init__(self, name: _Optional[str] = ..., step_metric: _Optional[str] = ..., summary: _Optional[str] = ..., goal: _Optional[str] = ..., hidden: _Optional[bool] = ...) -> None: ...

class ScalarBlock(_message.Message):
    __slots__ = ("keys", "key_index", "step", "ts_us", "value")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    KEY_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TS_US_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    key_index: _containers.RepeatedScalarFieldContainer[int]
    step: _containers.RepeatedScalarFieldContainer[int]
    ts_us: _containers.RepeatedScalarFieldContainer[int]
    value: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., key_index: _Optional[_Iterable[int]] = ..., step: _Optional[_Iterable[int]] = ..., ts_us: _Optional[_Iterable[int]] = ..., value: _Optional[_Iterable[float]] = ...) -> None: ...

class SystemBlock(_message.Message):
    __slots__ = ("host", "keys", "devices", "key_index", "device_index", "ts_us", "value")
    HOST_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    KEY_INDEX_FIELD_NUMBER: _ClassVar[int]
    DEVICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TS_US_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    host: str
    keys: _containers.RepeatedScalarFieldContainer[str]
    devices: _containers.RepeatedScalarFieldContainer[str]
    key_index: _containers.RepeatedScalarFieldContainer[int]
    device_index: _containers.RepeatedScalarFieldContainer[int]
    ts_us: _containers.RepeatedScalarFieldContainer[int]
    value: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, host: _Optional[str] = ..., keys: _Optional[_Iterable[str]] = ..., devices: _Optional[_Iterable[str]] = ..., key_index: _Optional[_Iterable[int]] = ..., device_index: _Optional[_Iterable[int]] = ..., ts_us: _Optional[_Iterable[int]] = ..., value: _Optional[_Iterable[float]] = ...) -> None: ...

class Histogram(_message.Message):
    __slots__ = ("key", "step", "ts_us", "count", "sum", "min", "max", "nonfinite", "bucket_edges", "bucket_counts")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TS_US_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SUM_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    NONFINITE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_EDGES_FIELD_NUMBER: _ClassVar[int]
    BUCKET_COUNTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    step: int
    ts_us: int
    count: int
    sum: float
    min: float
    max: float
    nonfinite: int
    bucket_edges: _containers.RepeatedScalarFieldContainer[float]
    bucket_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, key: _Optional[str] = ..., step: _Optional[int] = ..., ts_us: _Optional[int] = ..., count: _Optional[int] = ..., sum: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., nonfinite: _Optional[int] = ..., bucket_edges: _Optional[_Iterable[float]] = ..., bucket_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Media(_message.Message):
    __slots__ = ("key", "step", "kind", "sha256", "mime", "width", "height", "caption", "data", "uri", "index")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MIME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    key: str
    step: int
    kind: str
    sha256: str
    mime: str
    width: int
    height: int
    caption: str
    data: bytes
    uri: str
    index: int
    def __init__(self, key: _Optional[str] = ..., step: _Optional[int] = ..., kind: _Optional[str] = ..., sha256: _Optional[str] = ..., mime: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., caption: _Optional[str] = ..., data: _Optional[bytes] = ..., uri: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class ModelGraph(_message.Message):
    __slots__ = ("graph_json",)
    GRAPH_JSON_FIELD_NUMBER: _ClassVar[int]
    graph_json: str
    def __init__(self, graph_json: _Optional[str] = ...) -> None: ...

class ConsoleLine(_message.Message):
    __slots__ = ("ts_us", "stream", "line_no", "text")
    TS_US_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ts_us: int
    stream: str
    line_no: int
    text: str
    def __init__(self, ts_us: _Optional[int] = ..., stream: _Optional[str] = ..., line_no: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("ts_us", "level", "title", "text")
    TS_US_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ts_us: int
    level: str
    title: str
    text: str
    def __init__(self, ts_us: _Optional[int] = ..., level: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("stream_id", "seq", "rejected")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    seq: int
    rejected: _containers.RepeatedCompositeFieldContainer[Rejection]
    def __init__(self, stream_id: _Optional[str] = ..., seq: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[Rejection, _Mapping]]] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("what", "reason")
    WHAT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    what: str
    reason: str
    def __init__(self, what: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("sql", "parameters", "max_rows", "timeout_ms")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SQL_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    sql: str
    parameters: _containers.ScalarMap[str, str]
    max_rows: int
    timeout_ms: int
    def __init__(self, sql: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., max_rows: _Optional[int] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("arrow_ipc", "rows")
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    rows: int
    def __init__(self, arrow_ipc: _Optional[bytes] = ..., rows: _Optional[int] = ...) -> None: ...

class AccessRequest(_message.Message):
    __slots__ = ("project", "write", "run_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    write: bool
    run_id: str
    def __init__(self, project: _Optional[str] = ..., write: _Optional[bool] = ..., run_id: _Optional[str] = ...) -> None: ...

class AccessReply(_message.Message):
    __slots__ = ("auth_required", "key_id", "run_exists", "next_step", "max_batch_bytes", "run_live_owner", "project", "read_only", "admin")
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_EXISTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_STEP_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUN_LIVE_OWNER_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    auth_required: bool
    key_id: str
    run_exists: bool
    next_step: int
    max_batch_bytes: int
    run_live_owner: RunOwner
    project: str
    read_only: bool
    admin: bool
    def __init__(self, auth_required: _Optional[bool] = ..., key_id: _Optional[str] = ..., run_exists: _Optional[bool] = ..., next_step: _Optional[int] = ..., max_batch_bytes: _Optional[int] = ..., run_live_owner: _Optional[_Union[RunOwner, _Mapping]] = ..., project: _Optional[str] = ..., read_only: _Optional[bool] = ..., admin: _Optional[bool] = ...) -> None: ...

class RunOwner(_message.Message):
    __slots__ = ("stream_id", "host", "since_us")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    SINCE_US_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    host: str
    since_us: int
    def __init__(self, stream_id: _Optional[str] = ..., host: _Optional[str] = ..., since_us: _Optional[int] = ...) -> None: ...
