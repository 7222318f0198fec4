"""Property: whatever a client sends to any public endpoint of the running studio, the answer is a
result or one clear message. Never an HTTP 500, never a traceback, never the 'something went wrong'
that marks an unexpected error, never a hang.

Each example starts from an endpoint's cheap valid arguments (tests/endpoint_args.py) and breaks them:
some values replaced by hostile ones (NaN, infinities, huge and negative numbers, odd or enormous
text, wrong types, junk structures), arguments cut short, or extra ones added. Hypothesis runs
derandomized and without its example database, so CI sees the same examples every time. For a deeper,
random search: FUZZ_EXAMPLES=200 pytest tests/test_fuzz_endpoints.py
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_calls import UNEXPECTED, call
from tests.endpoint_args import baseline

DEEP = os.environ.get("FUZZ_EXAMPLES")
EXAMPLES_PER_ENDPOINT = int(DEEP) if DEEP else 8

EDGE_NUMBERS = [float("nan"), float("inf"), float("-inf"), 0, -1, -0.5, 0.5, 1e-308, 1e308, 2**31, 2**32,
                2**63, -(2**63), 10**30, -(10**30)]


def _cheap_or_invalid(value: float) -> bool:
    """Numbers above 8 but inside every limit are valid and can be slow (4,000 tokens, 240 frames):
    the fuzz leaves them to the ordinary tests and sends the small and the impossible."""
    return not 8 < abs(value) < 10_000


NUMBERS = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(min_value=-(2**80), max_value=2**80).filter(_cheap_or_invalid),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: v != v or _cheap_or_invalid(v)),
)
ODD_TEXT = ["", " ", "\x00", "\u202e\u200bevil", "🎨" * 100, "../../etc/passwd", "http://127.0.0.1:1/",
            "<script>alert(1)</script>", "%s%n{0}{}", "a" * 200_000, "\n" * 1000, "Ω" * 60_000, "1e400", "NaN",
            "-1", "Robert'); DROP TABLE items;--"]
TEXTS = st.one_of(st.text(max_size=40), st.sampled_from(ODD_TEXT))
MESSAGES = st.lists(
    st.fixed_dictionaries({
        "role": st.sampled_from(["user", "assistant", "system", "tool", ""]),
        "content": st.one_of(TEXTS, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXTS}),
                                             max_size=2)),
    }),
    max_size=4,
)
JUNK = st.sampled_from([None, True, False, [], {}, [1, "a"], {"a": 1}, {"path": 5}, [[[]]],
                        {"meta": {"_type": "gradio.FileData"}}])
HOSTILE = st.one_of(NUMBERS, TEXTS, JUNK, MESSAGES)


@st.composite
def broken(draw, args: list) -> list:
    """The valid `args`, broken one of three ways."""
    args = list(args)
    how = draw(st.sampled_from(["replace", "replace", "replace", "cut", "extend"])) if args else "extend"
    if how == "cut":
        return args[: draw(st.integers(min_value=0, max_value=len(args) - 1))]
    if how == "extend":
        return args + draw(st.lists(HOSTILE, min_size=1, max_size=3))
    for index in draw(st.sets(st.integers(min_value=0, max_value=len(args) - 1), min_size=1,
                              max_size=min(3, len(args)))):
        args[index] = draw(HOSTILE)
    return args


@pytest.fixture(scope="module")
def app(open_studio):
    return open_studio


ENDPOINTS = sorted(baseline({"photo": {}, "png": {}, "midi": {}, "wav": {}, "video": {}}))


def assert_handled(outcome, sent: list) -> None:
    assert outcome.status < 500, (sent, outcome.raw[:500])
    assert outcome.event in ("complete", "error"), (sent, outcome.raw[:500])
    assert "Traceback" not in outcome.raw, (sent, outcome.raw[:500])
    if outcome.event == "error":
        message = outcome.message
        assert isinstance(message, str) and message.strip(), (sent, outcome.raw[:500])
        assert not message.startswith(UNEXPECTED), (sent, message)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_each_endpoint_works_with_its_valid_arguments(app, endpoint):
    """The starting point of the fuzz: every endpoint answers these with a result (or, for the two that
    need something first, with their explanation)."""
    outcome = call(app.url, endpoint, app.args[endpoint])
    expected_refusals = {"gallery_rerun": "does not exist",
                         "gallery_delete": "does not exist",
                         "models_download": "running offline",  # the fuzzed studio is started --offline
                         "models_delete": "not downloaded"}
    if endpoint in expected_refusals and outcome.event == "error":
        assert expected_refusals[endpoint] in outcome.message
    else:
        assert outcome.event == "complete", outcome.raw[:500]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(max_examples=EXAMPLES_PER_ENDPOINT, deadline=None, derandomize=not DEEP, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_hostile_arguments_get_a_result_or_a_clear_message(app, endpoint, data):
    sent = data.draw(broken(app.args[endpoint]), label="arguments")
    assert_handled(call(app.url, endpoint, sent), sent)


def test_the_studio_is_still_up_after_the_fuzz(app):
    assert app.process.poll() is None and app.responds()
    assert call(app.url, "patterns", app.args["patterns"]).event == "complete"
