"""Our OTLP span encoder against the library's on many random batches: ``make fuzz`` runs 1,000.

The strategies and the check are the unit test's (tests/unit/test_otlp_spans.py); this adds cases,
a tenth of NOTIFY_FUZZ_EXAMPLES, from NOTIFY_FUZZ_SEED when it is set. No gateway is involved.
"""

from __future__ import annotations

from hypothesis import given
from opentelemetry.sdk.trace import ReadableSpan

from tests.fuzz.conftest import fuzz_settings
from tests.unit.test_otlp_spans import batches, check_batch


@fuzz_settings(0.1)
@given(batches())
def test_fuzzed_batches_encode_as_the_library_encodes_them(batch: list[ReadableSpan]) -> None:
    check_batch(batch)
