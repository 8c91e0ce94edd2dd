"""Stubs generated from protos/ with grpcio-tools: cache, import, wire contract, errors."""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from durable_helpers import stubs
from durable_helpers.stubs import PROJECT_ROOT, ProtoCompileError

PROTOS = PROJECT_ROOT / "protos"


@pytest.fixture(scope="module")
def df():
    return stubs.load("durable_functions")


def test_generate_is_cached_by_content(tmp_path: Path) -> None:
    first = stubs.generate(PROTOS, tmp_path)
    stamp = (first / "durable_functions_pb2.py").stat().st_mtime_ns
    again = stubs.generate(PROTOS, tmp_path)
    assert again == first
    assert (again / "durable_functions_pb2.py").stat().st_mtime_ns == stamp

    changed = tmp_path / "protos"
    changed.mkdir()
    text = (PROTOS / "durable_functions.proto").read_text()
    (changed / "durable_functions.proto").write_text(text + "\nmessage Extra { string x = 1; }\n")
    other = stubs.generate(changed, tmp_path)
    assert other != first
    assert "Extra" in (other / "durable_functions_pb2.pyi").read_text()


def test_message_round_trip(df) -> None:
    request = df.NewDurableTaskRequest(functionName="HelloSequence", input='"x"', instanceId="a/b")
    decoded = df.NewDurableTaskRequest.FromString(request.SerializeToString())
    assert decoded == request
    assert decoded.instanceId == "a/b"


def test_field_numbers_match_the_prototype(df) -> None:
    request = df.NewDurableTaskRequest.DESCRIPTOR
    response = df.NewDurableTaskResponse.DESCRIPTOR
    assert df.DESCRIPTOR.package == "gRPCChannel"
    assert df.DESCRIPTOR.services_by_name["DurableTaskService"].full_name == (
        "gRPCChannel.DurableTaskService"
    )
    assert request.fields_by_name["functionName"].number == 1
    expected = {
        "id": 1,
        "StatusQueryGetUri": 2,
        "SendEventPostUri": 3,
        "TerminatePostUri": 4,
        "RewindPostUri": 5,
        "PurgeHistoryDeleteUri": 6,
    }
    for name, number in expected.items():
        field = response.fields_by_name[name]
        assert field.number == number
        assert field.type == field.TYPE_STRING


def test_prototype_wire_bytes_decode(df) -> None:
    # Field 1, wire type 2 (length-delimited), "Hello": what the 2019 client put on the wire.
    wire = bytes([0x0A, 5]) + b"Hello"
    assert df.NewDurableTaskRequest.FromString(wire).functionName == "Hello"


def test_serve_and_call_start_new_in_process(df) -> None:
    class Servicer(df.DurableTaskServiceServicer):
        def StartNew(self, request, context):
            return df.NewDurableTaskResponse(
                id=f"id-{request.functionName}", StatusQueryGetUri="http://x/status"
            )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    df.add_DurableTaskServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = df.DurableTaskServiceStub(channel)
            reply = stub.StartNew(df.NewDurableTaskRequest(functionName="Chain"), timeout=10)
        assert reply.id == "id-Chain"
        assert reply.StatusQueryGetUri == "http://x/status"
    finally:
        server.stop(grace=None)


def test_broken_proto_gives_protocs_message(tmp_path: Path) -> None:
    broken = tmp_path / "protos"
    broken.mkdir()
    (broken / "broken.proto").write_text('syntax = "proto3";\nmessage A {\n  strin x = 1;\n}\n')
    with pytest.raises(ProtoCompileError) as caught:
        stubs.generate(broken, tmp_path / "cache")
    message = str(caught.value)
    assert "broken.proto:3" in message
    assert "Traceback" not in message


def test_command_line_regenerates_and_reports_errors(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "durable_helpers.stubs", "--cache", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert str(tmp_path) in ok.stdout
    assert "durable_functions_pb2_grpc.py" in ok.stdout

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.proto").write_text('syntax = "proto3";\nmessage {\n')
    bad = subprocess.run(
        [sys.executable, "-m", "durable_helpers.stubs", "--protos", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "bad.proto:2" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_missing_proto_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="proto_dir="):
        stubs.generate(tmp_path / "nothing-here")


def test_unknown_proto_name_lists_the_known_ones() -> None:
    with pytest.raises(ModuleNotFoundError, match="durable_functions"):
        stubs.load("nope")
