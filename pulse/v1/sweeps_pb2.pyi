from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateSweepRequest(_message.Message):
    __slots__ = ("project", "config_json")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    project: str
    config_json: str
    def __init__(self, project: _Optional[str] = ..., config_json: _Optional[str] = ...) -> None: ...

class SweepRef(_message.Message):
    __slots__ = ("sweep_id",)
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    def __init__(self, sweep_id: _Optional[str] = ...) -> None: ...

class Sweep(_message.Message):
    __slots__ = ("sweep_id", "project", "config_json", "state", "trials", "running", "grid_size", "created_at_us")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    GRID_SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    project: str
    config_json: str
    state: str
    trials: int
    running: int
    grid_size: int
    created_at_us: int
    def __init__(self, sweep_id: _Optional[str] = ..., project: _Optional[str] = ..., config_json: _Optional[str] = ..., state: _Optional[str] = ..., trials: _Optional[int] = ..., running: _Optional[int] = ..., grid_size: _Optional[int] = ..., created_at_us: _Optional[int] = ...) -> None: ...

class NextTrialRequest(_message.Message):
    __slots__ = ("sweep_id", "agent_id", "host", "claim_id")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    CLAIM_ID_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    agent_id: str
    host: str
    claim_id: str
    def __init__(self, sweep_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., host: _Optional[str] = ..., claim_id: _Optional[str] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("sweep_id", "project", "run_id", "params_json", "seq")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    project: str
    run_id: str
    params_json: str
    seq: int
    def __init__(self, sweep_id: _Optional[str] = ..., project: _Optional[str] = ..., run_id: _Optional[str] = ..., params_json: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class NextTrialResponse(_message.Message):
    __slots__ = ("trial", "done", "reason")
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trial: Trial
    done: bool
    reason: str
    def __init__(self, trial: _Optional[_Union[Trial, _Mapping]] = ..., done: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("sweep_id", "agent_id", "run_ids")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    agent_id: str
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sweep_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TrialRef(_message.Message):
    __slots__ = ("sweep_id", "run_id")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    run_id: str
    def __init__(self, sweep_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class StopOrder(_message.Message):
    __slots__ = ("run_id", "stop", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    stop: bool
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., stop: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("stop", "sweep_state")
    STOP_FIELD_NUMBER: _ClassVar[int]
    SWEEP_STATE_FIELD_NUMBER: _ClassVar[int]
    stop: _containers.RepeatedCompositeFieldContainer[StopOrder]
    sweep_state: str
    def __init__(self, stop: _Optional[_Iterable[_Union[StopOrder, _Mapping]]] = ..., sweep_state: _Optional[str] = ...) -> None: ...

class TrialReport(_message.Message):
    __slots__ = ("sweep_id", "run_id", "agent_id", "state", "exit_code", "error")
    SWEEP_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sweep_id: str
    run_id: str
    agent_id: str
    state: str
    exit_code: int
    error: str
    def __init__(self, sweep_id: _Optional[str] = ..., run_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., state: _Optional[str] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class TrialReportAck(_message.Message):
    __slots__ = ("run_state", "has_objective", "objective")
    RUN_STATE_FIELD_NUMBER: _ClassVar[int]
    HAS_OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    run_state: str
    has_objective: bool
    objective: float
    def __init__(self, run_state: _Optional[str] = ..., has_objective: _Optional[bool] = ..., objective: _Optional[float] = ...) -> None: ...
