"""The message state machine: which state may follow which, what each change leaves in the
history, and which states are final.

The allowed moves are written out here on their own, as the specification; the module's table is
checked against them, pair by pair, in both directions.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from typing import Any

import pytest

from gateway.lifecycle.states import (
    ACCEPTED,
    DELIVERED,
    EXPIRED,
    FAILED,
    RECALLED,
    SENDING,
    SENT,
    UNKNOWN,
    IllegalTransition,
    State,
    advance,
    may_follow,
    state_name,
)
from generated.notify.v1 import notification_service_pb2 as pb

STATES: tuple[State, ...] = (ACCEPTED, SENDING, SENT, DELIVERED, FAILED, UNKNOWN, RECALLED, EXPIRED)

ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {
        (ACCEPTED, SENDING),  # a vendor call starts
        (ACCEPTED, FAILED),  # stopped before any vendor call (rate limit, refused upload, owner died)
        (ACCEPTED, EXPIRED),  # queued and never sent in time
        (SENDING, SENT),  # the vendor accepted it
        (SENDING, FAILED),  # every attempt refused or never left
        (SENDING, UNKNOWN),  # some attempt may have reached the vendor
        (SENDING, ACCEPTED),  # queued: nothing reached the vendor, a worker tries again later
        (SENT, DELIVERED),  # the vendor's delivery report
        (SENT, RECALLED),
        (DELIVERED, RECALLED),
        (UNKNOWN, SENDING),  # a resend, only where the vendor drops repeats
        (UNKNOWN, SENT),  # a late answer proves it was sent (the Send's lease ran out meanwhile)
    }
)
REFUSED = sorted(set(itertools.product(STATES, STATES)) - ALLOWED)


def short(state: State) -> str:
    return state_name(state).removeprefix("MESSAGE_STATE_")


def cases(pairs: Iterable[tuple[State, State]]) -> list[Any]:
    return [pytest.param(a, b, id=f"{short(a)}->{short(b)}") for a, b in sorted(pairs)]


def record_in(state: State) -> pb.MessageRecord:
    record = pb.MessageRecord(message_id="01HZXTESTMESSAGE0000000000", tenant="acme", state=state)
    record.history.add(state=state, reason="how it got here")
    return record


@pytest.mark.parametrize(("current", "new"), cases(ALLOWED))
def test_every_allowed_transition_moves_the_record_and_appends_the_change_with_its_reason(
    current: State, new: State
) -> None:
    record = record_in(current)

    advance(record, new, "because the test says so", at=1_700_000_000.25)

    assert record.state == new
    assert len(record.history) == 2
    change = record.history[-1]
    assert (change.state, change.reason) == (new, "because the test says so")
    assert change.time.ToNanoseconds() == pytest.approx(1_700_000_000_250_000_000, abs=1000)
    assert record.update_time == change.time


@pytest.mark.parametrize(("current", "new"), cases(REFUSED))
def test_every_other_transition_is_refused_and_leaves_the_record_untouched(
    current: State, new: State
) -> None:
    record = record_in(current)
    before = pb.MessageRecord()
    before.CopyFrom(record)

    with pytest.raises(IllegalTransition):
        advance(record, new, "should not happen")

    assert record == before


def test_may_follow_answers_exactly_the_allowed_transitions() -> None:
    answered = {(a, b) for a, b in itertools.product(STATES, STATES) if may_follow(a, b)}
    assert answered == ALLOWED


def test_unknown_never_becomes_failed_by_guessing() -> None:
    record = record_in(UNKNOWN)
    with pytest.raises(IllegalTransition, match="MESSAGE_STATE_UNKNOWN cannot become MESSAGE_STATE_FAILED"):
        advance(record, FAILED, "timed out, probably lost")
    assert record.state == UNKNOWN


@pytest.mark.parametrize("new", STATES, ids=short)
def test_a_failed_message_never_changes_again(new: State) -> None:
    with pytest.raises(IllegalTransition):
        advance(record_in(FAILED), new, "late news")


def test_a_sent_message_cannot_turn_failed() -> None:
    with pytest.raises(IllegalTransition):
        advance(record_in(SENT), FAILED, "a late error")


@pytest.mark.parametrize("new", STATES, ids=short)
def test_a_recalled_message_never_changes_again(new: State) -> None:
    with pytest.raises(IllegalTransition):
        advance(record_in(RECALLED), new, "late news")


def test_the_refusal_names_the_message_and_both_states() -> None:
    with pytest.raises(IllegalTransition) as refused:
        advance(record_in(SENT), ACCEPTED, "backwards")
    assert "01HZXTESTMESSAGE0000000000" in str(refused.value)
    assert "MESSAGE_STATE_SENT cannot become MESSAGE_STATE_ACCEPTED" in str(refused.value)


@pytest.mark.parametrize(("current", "new"), cases(ALLOWED))
def test_by_default_only_accepted_and_sending_are_not_final(current: State, new: State) -> None:
    record = record_in(current)
    advance(record, new, "step")
    assert record.final is (new not in (ACCEPTED, SENDING))


def test_a_sent_message_awaiting_its_delivery_report_stays_non_final_until_the_report() -> None:
    record = record_in(SENDING)

    advance(record, SENT, "task accepted; waiting for the delivery report", final=False)
    assert (record.state, record.final) == (SENT, False)

    advance(record, DELIVERED, "delivery report: read")
    assert (record.state, record.final) == (DELIVERED, True)


def test_a_resend_of_an_unknown_message_is_in_progress_again() -> None:
    record = record_in(UNKNOWN)
    record.final = True
    advance(record, SENDING, "resent: the vendor drops repeats")
    assert record.final is False


def test_history_keeps_every_change_in_order() -> None:
    record = record_in(ACCEPTED)
    steps = [(SENDING, "calling"), (SENT, "accepted"), (DELIVERED, "read"), (RECALLED, "withdrawn")]
    for state, reason in steps:
        advance(record, state, reason)
    assert [(c.state, c.reason) for c in record.history] == [(ACCEPTED, "how it got here"), *steps]


def test_the_change_is_stamped_now_unless_a_time_is_given() -> None:
    record = record_in(ACCEPTED)
    before = time.time_ns()
    advance(record, SENDING, "calling")
    after = time.time_ns()
    assert before - 1000 <= record.history[-1].time.ToNanoseconds() <= after + 1000
