"""A log reader that stops reading never stops the gateway's calls (gateway/log_writer.py).

The gateway as operators run it, a child process whose stderr is a pipe, and nobody reading that
pipe until the calls are done: its lines fill the pipe (64 KiB on Linux) many times over. Before
the log had a writer thread of its own, the call that wrote past a full pipe blocked the event
loop, and every call after it hung (the 138th Send, tried by hand).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc

from generated.notify.v1 import notification_service_pb2 as pb
from tests.gateway_process import config_file, free_port, gateway_process

CALLS = 1000
PIPE_BYTES = 64 * 1024  # Linux's default pipe capacity
NO_VENDOR = "http://127.0.0.1:9"  # the calls are refused before any vendor would be asked


async def test_calls_are_answered_while_nobody_reads_the_log(tmp_path: Path) -> None:
    port = free_port()
    reader_back = asyncio.Event()
    # No account: refused with INVALID_ARGUMENT in the gateway, one warning line each.
    request = pb.SendRequest(message=pb.Message(text=pb.Text(content="x")))
    codes: dict[grpc.StatusCode, int] = {}
    config = config_file(tmp_path, NO_VENDOR, port)
    async with gateway_process(config, port, hold_stderr=reader_back) as gateway:
        for _ in range(CALLS):
            try:
                await gateway.stub.Send(request, timeout=5)
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                code = error.code()
            codes[code] = codes.get(code, 0) + 1
            assert code is not grpc.StatusCode.DEADLINE_EXCEEDED, f"a call hung after {sum(codes.values())}"
        reader_back.set()
        assert await gateway.stop() == 0
    log = await gateway.log()

    assert codes == {grpc.StatusCode.INVALID_ARGUMENT: CALLS}
    assert len(log.encode()) > 3 * PIPE_BYTES, "the lines overfilled the unread pipe"
    lines = [json.loads(line) for line in log.splitlines()]
    sends = [line for line in lines if line.get("rpc") == "/notify.v1.NotificationService/Send"]
    assert len(sends) == CALLS, "every line waited for the reader and none was dropped (under the bound)"
    assert all(line["status"] == "INVALID_ARGUMENT" for line in sends)
    assert not [line for line in lines if "dropped" in line.get("msg", "")]
