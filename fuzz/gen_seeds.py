"""Writes the seed inputs of the network decoders' fuzz targets into fuzz/seeds/<target>/:
valid and near-valid requests for the fuzz signature (`x` FP32 [-1, 4], `s` BYTES [-1],
`k` INT64 [-1, 2]; see crates/server/src/protocol/fuzzing.rs), in each wire form. The gRPC seeds
are encoded by the protobuf classes tritonclient ships (the project venv, scripts/python-env.sh).

Run: .venv/bin/python fuzz/gen_seeds.py
"""

import json
import pathlib
import struct

import tritonclient.grpc.service_pb2 as pb

ROOT = pathlib.Path(__file__).resolve().parent / "seeds"


def write(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def v2_inputs(rows):
    return [
        {"name": "x", "datatype": "FP32", "shape": [rows, 4], "data": [[0.5, 1, -2, 3e3]] * rows},
        {"name": "s", "datatype": "BYTES", "shape": [rows], "data": ["a"] * rows},
        {"name": "k", "datatype": "INT64", "shape": [rows, 2], "data": [[1, -1]] * rows},
    ]


# V2 JSON.
write("v2_json", "full.json", json.dumps({"id": "1", "inputs": v2_inputs(2),
                                           "outputs": [{"name": "y"}],
                                           "parameters": {"priority": 1, "timeout": 5}}))
write("v2_json", "nested.json", json.dumps({"inputs": v2_inputs(1)}))
write("v2_json", "wrong_shape.json", json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}))

# V2 binary: two bytes of header length (little-endian), then the JSON header and the data.
header = {"inputs": [
    {"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
    {"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}},
    {"name": "k", "datatype": "INT64", "shape": [1, 2], "data": [3, 4]},
], "parameters": {"binary_data_output": True}}
head = json.dumps(header).encode()
data = struct.pack("<4f", 1, 2, 3, 4) + struct.pack("<I", 2) + b"hi"
write("v2_binary", "binary.bin", struct.pack("<H", len(head)) + head + data)
write("v2_binary", "truncated.bin", struct.pack("<H", len(head)) + head + data[:9])

# TF Serving: row and columnar :predict, and :classify examples.
write("tf_serving", "instances.json", json.dumps(
    {"instances": [{"x": [1, 2, 3, 4], "s": "a", "k": [1, 2]}] * 2}))
write("tf_serving", "inputs.json", json.dumps(
    {"inputs": {"x": [[1, 2, 3, 4]], "s": [{"b64": "aGk="}], "k": [[5, 6]]}}))
write("tf_serving", "examples.json", json.dumps(
    {"examples": [{"x": [1.0, 2, 3, 4], "k": [1, 2]}], "context": {"s": "c"}}))

# gRPC ModelInferRequest: typed contents, and raw_input_contents.
req = pb.ModelInferRequest(model_name="m", id="r1")
x = req.inputs.add(name="x", datatype="FP32", shape=[2, 4])
x.contents.fp32_contents.extend([0.5] * 8)
s = req.inputs.add(name="s", datatype="BYTES", shape=[2])
s.contents.bytes_contents.extend([b"a", b"bc"])
k = req.inputs.add(name="k", datatype="INT64", shape=[2, 2])
k.contents.int64_contents.extend([1, 2, 3, 4])
req.outputs.add(name="y")
req.parameters["priority"].int64_param = 1
write("grpc_infer_request", "typed.pb", req.SerializeToString())
raw = pb.ModelInferRequest(model_name="m")
raw.inputs.add(name="x", datatype="FP32", shape=[1, 4])
raw.inputs.add(name="s", datatype="BYTES", shape=[1])
raw.inputs.add(name="k", datatype="INT64", shape=[1, 2])
raw.raw_input_contents.extend([struct.pack("<4f", 1, 2, 3, 4), struct.pack("<I", 1) + b"z",
                               struct.pack("<2q", 7, 8)])
write("grpc_infer_request", "raw.pb", raw.SerializeToString())
