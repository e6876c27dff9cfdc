"""Triton Python-backend model: one ferlite architecture on ONNX Runtime (or LiteRT).

This file is copied into every version folder of the embedded model repository as `model.py`.
Triton's dynamic batcher hands `execute` several concurrent requests at once; they are
concatenated into ONE inference call and split back, so concurrent faces share a batch.
The model's parameters (`runtime`, `model_file`, `intra_op_threads`, `flip_tta`) come from
config.pbtxt.

The model takes uint8 pixels and does the serving steps around the network itself, with the
shared preprocessing: [0, 1] normalisation and, where the model's metadata asks for it, averaging
each face with its mirror image (`flip_tta`). Mirroring here rather than in the classifier halves
the bytes every hop carries (classifier -> shared memory -> Triton -> this process): MobileNetV2,
8 faces of 128 px, 393 KB instead of 786 KB.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from ferlite.base import preprocess


def session_options(threads: int):
    """ONNX Runtime options for a model sharing a small CPU with the rest of the stack.

    ONNX Runtime's worker threads spin after a run, waiting for the next one. Here the next thing
    to run is not this model but Triton, the classifier and face detection handling the answer,
    on the same cores: `force_spinning_stop` ends the spinning with the run. On 2 cores it cut
    Triton's compute per frame from 5.5 to 4.0 ms and a frame through the stack from 24.4 to
    20.7 ms (benchmarks/e2e_bench.py --breakdown-only, both settings on the same machine)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(folder, params.get("model_file", "model.onnx"))
        threads = int(params.get("intra_op_threads", "1"))
        self.runtime = params.get("runtime", "onnxruntime")
        self.flip = params.get("flip_tta", "0") == "1"
        self._buffer = np.empty(0, np.float32)  # the model's float input, grown once, reused
        if self.runtime == "onnxruntime":
            import onnxruntime as ort

            self.session = ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
            self._run = lambda x: self.session.run(None, {self.input_name: x})[0]
        else:
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = Interpreter(model_path=path, num_threads=threads)
            self._in = self.interpreter.get_input_details()[0]["index"]
            self._out = self.interpreter.get_output_details()[0]["index"]
            self._run = self._run_litert

    def _run_litert(self, x):
        self.interpreter.resize_tensor_input(self._in, list(x.shape))
        self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(self._in, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out).copy()

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """N uint8 faces -> the network's float32 input: the N faces in [0, 1], followed by their N
        mirror images when flipping (written into one reused buffer: no per-call allocation)."""
        n = len(pixels)
        rows = 2 * n if self.flip else n
        if self._buffer.shape[1:] != pixels.shape[1:] or len(self._buffer) < rows:
            self._buffer = np.empty((rows, *pixels.shape[1:]), np.float32)
        x = self._buffer[:rows]
        preprocess.normalize(pixels, out=x[:n])
        if self.flip:
            preprocess.mirrored(x[:n], out=x[n:])
        return x

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, "image").as_numpy() for r in requests]
        sizes = [len(b) for b in batches]
        try:
            pixels = batches[0] if len(batches) == 1 else np.concatenate(batches)
            probs = self._run(self.model_input(pixels))
            if self.flip:  # each face's answer: the mean of its own and its mirror image's
                n = len(pixels)
                probs = (probs[:n] + probs[n:]) / 2
        except Exception as exc:  # a bad batch must fail its requests, not the model
            error = pb_utils.TritonError(f"inference failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        finally:
            wipe(batches, self._buffer)
        responses, start = [], 0
        for n in sizes:
            out = pb_utils.Tensor("probs", probs[start:start + n].astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += n
        return responses

    def finalize(self):
        wipe([], self._buffer)
        self.session = None
        self.interpreter = None


def wipe(inputs, buffer) -> None:
    """Zero the face pixels this call saw: the inputs (in Triton's shared-memory regions, when it
    lets us write there) and the normalised copy, so no crop outlives its call in memory."""
    for array in inputs:
        if array.flags.writeable:
            array.fill(0)
    buffer.fill(0)
