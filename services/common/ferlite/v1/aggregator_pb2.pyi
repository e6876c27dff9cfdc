from ferlite.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmotionEvent(_message.Message):
    __slots__ = ("event_id", "classroom_id", "stream_id", "track_id", "timestamp", "box", "probabilities", "label", "confidence", "uncertain", "model")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSROOM_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    classroom_id: str
    stream_id: str
    track_id: str
    timestamp: float
    box: _common_pb2.BoundingBox
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    label: str
    confidence: float
    uncertain: bool
    model: _common_pb2.ModelRef
    def __init__(self, event_id: _Optional[str] = ..., classroom_id: _Optional[str] = ..., stream_id: _Optional[str] = ..., track_id: _Optional[str] = ..., timestamp: _Optional[float] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., probabilities: _Optional[_Iterable[float]] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., uncertain: _Optional[bool] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class RecordEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EmotionEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[EmotionEvent, _Mapping]]] = ...) -> None: ...

class RecordEventsResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "spooled")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    SPOOLED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    spooled: bool
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., spooled: _Optional[bool] = ...) -> None: ...

class SummaryRequest(_message.Message):
    __slots__ = ("classroom_id", "window_seconds", "end_time")
    CLASSROOM_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    classroom_id: str
    window_seconds: float
    end_time: float
    def __init__(self, classroom_id: _Optional[str] = ..., window_seconds: _Optional[float] = ..., end_time: _Optional[float] = ...) -> None: ...

class LabelCount(_message.Message):
    __slots__ = ("label", "count")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    label: str
    count: int
    def __init__(self, label: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class MinuteCounts(_message.Message):
    __slots__ = ("minute_start", "counts", "kept", "uncertain")
    MINUTE_START_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_FIELD_NUMBER: _ClassVar[int]
    minute_start: float
    counts: _containers.RepeatedCompositeFieldContainer[LabelCount]
    kept: _containers.RepeatedCompositeFieldContainer[LabelCount]
    uncertain: int
    def __init__(self, minute_start: _Optional[float] = ..., counts: _Optional[_Iterable[_Union[LabelCount, _Mapping]]] = ..., kept: _Optional[_Iterable[_Union[LabelCount, _Mapping]]] = ..., uncertain: _Optional[int] = ...) -> None: ...

class ModelCount(_message.Message):
    __slots__ = ("architecture", "count")
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    architecture: str
    count: int
    def __init__(self, architecture: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ClassroomSummary(_message.Message):
    __slots__ = ("classroom_id", "start_time", "end_time", "total_events", "distribution", "dominant_label", "per_minute", "uncertain_share", "kept", "models")
    CLASSROOM_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EVENTS_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    DOMINANT_LABEL_FIELD_NUMBER: _ClassVar[int]
    PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_SHARE_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    classroom_id: str
    start_time: float
    end_time: float
    total_events: int
    distribution: _containers.RepeatedCompositeFieldContainer[LabelCount]
    dominant_label: str
    per_minute: _containers.RepeatedCompositeFieldContainer[MinuteCounts]
    uncertain_share: float
    kept: _containers.RepeatedCompositeFieldContainer[LabelCount]
    models: _containers.RepeatedCompositeFieldContainer[ModelCount]
    def __init__(self, classroom_id: _Optional[str] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., total_events: _Optional[int] = ..., distribution: _Optional[_Iterable[_Union[LabelCount, _Mapping]]] = ..., dominant_label: _Optional[str] = ..., per_minute: _Optional[_Iterable[_Union[MinuteCounts, _Mapping]]] = ..., uncertain_share: _Optional[float] = ..., kept: _Optional[_Iterable[_Union[LabelCount, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelCount, _Mapping]]] = ...) -> None: ...

class EraseClassroomRequest(_message.Message):
    __slots__ = ("classroom_id",)
    CLASSROOM_ID_FIELD_NUMBER: _ClassVar[int]
    classroom_id: str
    def __init__(self, classroom_id: _Optional[str] = ...) -> None: ...

class EraseClassroomResponse(_message.Message):
    __slots__ = ("classroom_id", "events", "minute_buckets", "markers")
    CLASSROOM_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    MINUTE_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    MARKERS_FIELD_NUMBER: _ClassVar[int]
    classroom_id: str
    events: int
    minute_buckets: int
    markers: int
    def __init__(self, classroom_id: _Optional[str] = ..., events: _Optional[int] = ..., minute_buckets: _Optional[int] = ..., markers: _Optional[int] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("classroom_id", "since")
    CLASSROOM_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    classroom_id: str
    since: float
    def __init__(self, classroom_id: _Optional[str] = ..., since: _Optional[float] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("event_id", "true_label")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    true_label: str
    def __init__(self, event_id: _Optional[str] = ..., true_label: _Optional[str] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("correct", "model")
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    correct: bool
    model: _common_pb2.ModelRef
    def __init__(self, correct: _Optional[bool] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...
