from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CropDType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CROP_DTYPE_UNSPECIFIED: _ClassVar[CropDType]
    CROP_DTYPE_FLOAT32: _ClassVar[CropDType]
    CROP_DTYPE_UINT8: _ClassVar[CropDType]
CROP_DTYPE_UNSPECIFIED: CropDType
CROP_DTYPE_FLOAT32: CropDType
CROP_DTYPE_UINT8: CropDType

class BoundingBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    width: float
    height: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., width: _Optional[float] = ..., height: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class FaceCrop(_message.Message):
    __slots__ = ("height", "width", "channels", "dtype", "data")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    channels: int
    dtype: CropDType
    data: bytes
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., channels: _Optional[int] = ..., dtype: _Optional[_Union[CropDType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("probabilities", "label", "confidence", "uncertain")
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAIN_FIELD_NUMBER: _ClassVar[int]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    label: str
    confidence: float
    uncertain: bool
    def __init__(self, probabilities: _Optional[_Iterable[float]] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., uncertain: _Optional[bool] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("architecture", "model_version")
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    architecture: str
    model_version: str
    def __init__(self, architecture: _Optional[str] = ..., model_version: _Optional[str] = ...) -> None: ...
