from ferlite.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_GRAY8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGBA8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGRA8: _ClassVar[PixelFormat]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_GRAY8: PixelFormat
PIXEL_FORMAT_RGB8: PixelFormat
PIXEL_FORMAT_BGR8: PixelFormat
PIXEL_FORMAT_RGBA8: PixelFormat
PIXEL_FORMAT_BGRA8: PixelFormat

class RawFrame(_message.Message):
    __slots__ = ("width", "height", "format", "row_stride", "data")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ROW_STRIDE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    format: PixelFormat
    row_stride: int
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., row_stride: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("encoded", "raw")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawFrame
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawFrame, _Mapping]] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("frame", "crop_size", "include_crops")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    CROP_SIZE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CROPS_FIELD_NUMBER: _ClassVar[int]
    frame: Frame
    crop_size: int
    include_crops: bool
    def __init__(self, frame: _Optional[_Union[Frame, _Mapping]] = ..., crop_size: _Optional[int] = ..., include_crops: _Optional[bool] = ...) -> None: ...

class DetectedFace(_message.Message):
    __slots__ = ("box", "score", "landmarks", "crop")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    score: float
    landmarks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    crop: _common_pb2.FaceCrop
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., score: _Optional[float] = ..., landmarks: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ..., crop: _Optional[_Union[_common_pb2.FaceCrop, _Mapping]] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("faces", "frame_width", "frame_height", "detector", "detect_ms")
    FACES_FIELD_NUMBER: _ClassVar[int]
    FRAME_WIDTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    DETECT_MS_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[DetectedFace]
    frame_width: int
    frame_height: int
    detector: str
    detect_ms: float
    def __init__(self, faces: _Optional[_Iterable[_Union[DetectedFace, _Mapping]]] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., detector: _Optional[str] = ..., detect_ms: _Optional[float] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("track_id", "box")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    box: _common_pb2.BoundingBox
    def __init__(self, track_id: _Optional[str] = ..., box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ...) -> None: ...

class ProcessRequest(_message.Message):
    __slots__ = ("frame", "classroom_id", "stream_id", "frame_index", "timestamp", "previous_tracks", "record", "session_id")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    CLASSROOM_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TRACKS_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    frame: Frame
    classroom_id: str
    stream_id: str
    frame_index: int
    timestamp: float
    previous_tracks: _containers.RepeatedCompositeFieldContainer[Track]
    record: bool
    session_id: str
    def __init__(self, frame: _Optional[_Union[Frame, _Mapping]] = ..., classroom_id: _Optional[str] = ..., stream_id: _Optional[str] = ..., frame_index: _Optional[int] = ..., timestamp: _Optional[float] = ..., previous_tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., record: _Optional[bool] = ..., session_id: _Optional[str] = ...) -> None: ...

class LabelledFace(_message.Message):
    __slots__ = ("box", "score", "landmarks", "track_id", "event_id", "classification", "uncertain")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_FIELD_NUMBER: _ClassVar[int]
    box: _common_pb2.BoundingBox
    score: float
    landmarks: _containers.RepeatedCompositeFieldContainer[_common_pb2.Point]
    track_id: str
    event_id: str
    classification: _common_pb2.Classification
    uncertain: bool
    def __init__(self, box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., score: _Optional[float] = ..., landmarks: _Optional[_Iterable[_Union[_common_pb2.Point, _Mapping]]] = ..., track_id: _Optional[str] = ..., event_id: _Optional[str] = ..., classification: _Optional[_Union[_common_pb2.Classification, _Mapping]] = ..., uncertain: _Optional[bool] = ...) -> None: ...

class ProcessResponse(_message.Message):
    __slots__ = ("faces", "model", "recorded", "frame_width", "frame_height", "detect_ms", "classify_ms", "record_ms")
    FACES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    FRAME_WIDTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETECT_MS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFY_MS_FIELD_NUMBER: _ClassVar[int]
    RECORD_MS_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[LabelledFace]
    model: _common_pb2.ModelRef
    recorded: bool
    frame_width: int
    frame_height: int
    detect_ms: float
    classify_ms: float
    record_ms: float
    def __init__(self, faces: _Optional[_Iterable[_Union[LabelledFace, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., recorded: _Optional[bool] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., detect_ms: _Optional[float] = ..., classify_ms: _Optional[float] = ..., record_ms: _Optional[float] = ...) -> None: ...

class RecordAck(_message.Message):
    __slots__ = ("stored", "failed")
    STORED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    stored: _containers.RepeatedScalarFieldContainer[int]
    failed: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, stored: _Optional[_Iterable[int]] = ..., failed: _Optional[_Iterable[int]] = ...) -> None: ...

class ProcessUpdate(_message.Message):
    __slots__ = ("frame_index", "result", "ack")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    result: ProcessResponse
    ack: RecordAck
    def __init__(self, frame_index: _Optional[int] = ..., result: _Optional[_Union[ProcessResponse, _Mapping]] = ..., ack: _Optional[_Union[RecordAck, _Mapping]] = ...) -> None: ...
