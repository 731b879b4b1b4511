"""The incremental fold (only transformers whose inputs changed re-run) equals a fold that re-runs
every transformer after every event: transformers are pure, so skipping them is only an optimization.
"""

import orjson
import pytest
from hypothesis import given, settings

from projections import session as fold_module
from projections.errors import EventRejected
from projections.session import fold
from projections.transformers import BUILT_IN, run_transformers
from schemas.events import event_from_object
from schemas.session import SessionMeta, SessionState
from streams.devkit.paths import sample_rules
from tests.support.strategies import event_sequences

pytestmark = pytest.mark.unit

RULES = sample_rules()
EVERY_INPUT = frozenset().union(*(t.inputs for t in BUILT_IN))


def reference_apply(state, event):
    if type(event).__name__ == "SessionErased":  # nothing is left of the session
        return None
    if state is not None and event.id in state.recent_ids:
        return state
    when = fold_module.rfc3339(event.time)
    if state is None:
        namespaces, facts, meta, recent = {}, {}, SessionMeta(1, when, when), []
    else:
        namespaces, facts, recent = state.namespaces, state.facts, state.recent_ids
        meta = SessionMeta(state.meta.event_count + 1, state.meta.first_event_time, when)
    change = fold_module._change(event, namespaces, facts)
    derived = run_transformers(change.namespaces, change.facts, RULES, EVERY_INPUT, created=True)
    recent = [*recent[-(fold_module.RECENT_IDS - 1) :], event.id]
    return SessionState(event.subject, derived, meta, change.facts, recent)


@settings(max_examples=300, deadline=None)
@given(sequence=event_sequences())
def test_incremental_fold_equals_rerunning_every_transformer(sequence):
    _, objects = sequence
    events = [event_from_object(orjson.loads(orjson.dumps(o))) for o in objects]
    reference = None
    for event in events:
        try:
            reference = reference_apply(reference, event)
        except EventRejected:
            continue
    assert fold(events, rules=RULES) == reference
