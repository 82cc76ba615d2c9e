"""An idempotency binding's stored text: built by hand for speed, it must stay exactly what
``json.dumps`` wrote, which the Lua scripts and every replica's ``decode_binding`` read."""

from __future__ import annotations

import json
import time

import pytest

from gateway.store.idempotency import Binding, decode_binding, encode_binding


@pytest.mark.parametrize(
    "binding",
    [
        Binding("9f2c" * 16, "01JB0000000000000000000ABC", time.time()),
        Binding('quote " back \\ slash', "new\nline", 0.1),
        Binding("ünïcödé ✓", "tab\t", 1e20),
        Binding("", "", 5),
        Binding("a", "b", 1.5e-7),
        Binding("a", "b", float("nan")),
        Binding("a", "b", float("inf")),
    ],
)
def test_a_binding_is_written_as_json_dumps_writes_it(binding: Binding) -> None:
    expected = json.dumps({"fp": binding.fingerprint, "m": binding.message_id, "t": binding.bound_at})

    assert encode_binding(binding) == expected
    decoded = decode_binding(encode_binding(binding))
    assert (decoded.fingerprint, decoded.message_id) == (binding.fingerprint, binding.message_id)
