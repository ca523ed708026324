"""The quick walk over OpenAI chat bodies never clears a body the full checks refuse, and clears
the common ones (else it would save nothing): every refusal still comes from the full checks."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ext.apis.limits import RequestLimits, check_shape
from edge_ext.apis.plain_chat import plainly_valid
from edge_ext.apis.validate import openai_fields
from edge_ext.errors import EdgeError
from tests.fuzzing import FUZZ_FIXED, OPENAI_RICH, field_paths, json_scalars, json_values, replaced

LIMITS = RequestLimits(max_messages=4, max_content_parts=3)
HI = {"role": "user", "content": "hi"}


def passes_full_checks(body: dict, limits: RequestLimits | None = LIMITS) -> bool:
    try:
        if limits is not None:
            check_shape(body, limits)
        openai_fields(body)
    except EdgeError:
        return False
    return True


@pytest.mark.parametrize("body", [
    pytest.param({"model": "m", "messages": [{"role": "system", "content": "terse"}, HI]}, id="plain"),
    pytest.param({"model": "m", "messages": [HI], "temperature": 0, "top_p": 1.0, "max_tokens": 5, "n": 128,
                  "user": "u", "stream": True, "stream_options": {"include_usage": True}, "stop": ["x"]}, id="options"),
    pytest.param({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 3}]},
                 id="parts-at-the-cap"),
    pytest.param({"model": "m", "messages": [HI] * 4, "temperature": None, "brand_new": [1, {"x": None}]},
                 id="messages-at-the-cap-nulls-and-unknown-fields"),
])
def test_common_bodies_are_cleared_by_the_quick_walk(body):
    assert passes_full_checks(body)
    assert plainly_valid(body, LIMITS)


def test_a_body_using_every_field_is_cleared_under_the_default_limits():
    body, limits = {"model": "m", **OPENAI_RICH}, RequestLimits(max_messages=1000, max_content_parts=1000)
    assert passes_full_checks(body, limits) and plainly_valid(body, limits)


@pytest.mark.parametrize("body", [
    pytest.param({"messages": [HI] * 5}, id="too-many-messages"),
    pytest.param({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 4}]}, id="too-many-parts"),
    pytest.param({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}] * 2,
                                "content": [{"type": "text", "text": "a"}] * 2}]}, id="tool-calls-count-as-parts"),
    pytest.param({"messages": [HI], "system": [1, 2, 3, 4]}, id="a-system-array-counts-as-parts"),
    pytest.param({"messages": [{"role": "robot", "content": "x"}]}, id="unknown-role"),
    pytest.param({"messages": [{"role": 1, "content": "x"}]}, id="role-number"),
    pytest.param({"messages": [HI, None]}, id="null-message"),
    pytest.param({"messages": [HI], "temperature": True}, id="boolean-temperature"),
    pytest.param({"messages": [HI], "temperature": 2.5}, id="temperature-out-of-range"),
    pytest.param({"messages": [HI], "max_tokens": 0}, id="max-tokens-zero"),
    pytest.param({"messages": [HI], "n": 129}, id="too-many-choices"),
    pytest.param({"messages": [HI], "user": 7}, id="user-number"),
    pytest.param({"messages": [{"role": "user", "content": "x", "name": ["n"]}]}, id="name-array"),
    pytest.param({"messages": [{"role": "assistant", "tool_calls": "t"}]}, id="tool-calls-string"),
])
def test_bodies_the_full_checks_refuse_are_not_cleared(body):
    body = {"model": "m", **body}
    assert not passes_full_checks(body)
    assert not plainly_valid(body, LIMITS)


def test_without_limits_only_the_field_checks_count():
    body = {"model": "m", "messages": [HI] * 9}
    assert plainly_valid(body, None) and not plainly_valid(body, LIMITS)


def _confused_openai():
    body = {"model": "m", **OPENAI_RICH}
    values = json_scalars | st.lists(json_scalars, max_size=3) | st.dictionaries(st.text(max_size=8), json_scalars, max_size=3) | json_values
    return st.tuples(st.sampled_from(field_paths(body)), values).map(lambda t: replaced(body, *t))


_messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "tool", "robot", 1])},
                                           optional={"content": json_values, "name": json_values,
                                                     "tool_calls": json_values}), min_size=1, max_size=5)
_plausible = st.fixed_dictionaries({"model": st.just("m"), "messages": _messages},
                                   optional={"temperature": json_values, "max_tokens": json_values, "n": json_values,
                                             "stop": json_values, "tools": json_values, "system": json_values})


@settings(derandomize=FUZZ_FIXED, max_examples=3_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_confused_openai() | _plausible, limited=st.booleans())
def test_the_quick_walk_agrees_with_the_full_checks(body, limited):
    # The body as a client would send it: JSON round-tripped (tuples become lists, and so on).
    body = json.loads(json.dumps(body))
    limits = LIMITS if limited else None
    if limited and "messages" in body and isinstance(body["messages"], list) and len(body["messages"]) > 4:
        limits = RequestLimits(max_messages=16, max_content_parts=16)  # the rich body, under its caps
    if plainly_valid(body, limits):
        assert passes_full_checks(body, limits), body
