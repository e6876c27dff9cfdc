from ferlite.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("crops", "routing_key", "architecture")
    CROPS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_KEY_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    crops: _containers.RepeatedCompositeFieldContainer[_common_pb2.FaceCrop]
    routing_key: str
    architecture: str
    def __init__(self, crops: _Optional[_Iterable[_Union[_common_pb2.FaceCrop, _Mapping]]] = ..., routing_key: _Optional[str] = ..., architecture: _Optional[str] = ...) -> None: ...

class ShadowResult(_message.Message):
    __slots__ = ("model", "results", "latency_ms")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.Classification]
    latency_ms: float
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., results: _Optional[_Iterable[_Union[_common_pb2.Classification, _Mapping]]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("results", "model", "shadow_scored", "shadow", "latency_ms")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SHADOW_SCORED_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.Classification]
    model: _common_pb2.ModelRef
    shadow_scored: bool
    shadow: _containers.RepeatedCompositeFieldContainer[ShadowResult]
    latency_ms: float
    def __init__(self, results: _Optional[_Iterable[_Union[_common_pb2.Classification, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., shadow_scored: _Optional[bool] = ..., shadow: _Optional[_Iterable[_Union[ShadowResult, _Mapping]]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class ABPolicy(_message.Message):
    __slots__ = ("weights", "sticky", "shadow_fraction", "revision")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    STICKY_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.ScalarMap[str, float]
    sticky: bool
    shadow_fraction: float
    revision: str
    def __init__(self, weights: _Optional[_Mapping[str, float]] = ..., sticky: _Optional[bool] = ..., shadow_fraction: _Optional[float] = ..., revision: _Optional[str] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: ABPolicy
    def __init__(self, policy: _Optional[_Union[ABPolicy, _Mapping]] = ...) -> None: ...
