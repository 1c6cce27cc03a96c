"""Triton python-backend model: runs <version dir>/model.onnx on onnxruntime, one thread.

Part of bench/serving/ (the side-by-side serving benchmark). Triton 2.51 from the nvidia-pytriton
wheel ships only the python backend, so an ONNX model runs here, as a person would write it:
Triton's dynamic batcher hands execute() the queued requests, they are stacked into one batch,
run in one onnxruntime call, and the outputs are split back per request. Every output the ONNX
graph declares is returned (Triton drops the ones a request did not ask for).
"""

import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests):
        feeds, sizes = {}, []
        for name in self.input_names:
            parts = [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests]
            if not sizes:
                sizes = [p.shape[0] for p in parts]
            feeds[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        try:
            outs = self.session.run(self.output_names, feeds)
        except Exception as e:  # one failed batch fails its requests, not the model
            err = pb_utils.TritonError(f"onnxruntime: {e}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=err) for _ in requests]
        responses, start = [], 0
        for n in sizes:
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(out[start:start + n]))
                       for name, out in zip(self.output_names, outs)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses
