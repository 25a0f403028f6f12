"""RpcPolicy and RpcRetryPolicy: defaults, accepted spellings, refusals naming the field."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest
from pydantic import BaseModel

from engined import RetryBudget
from engined.rpc import RpcPolicy, RpcRetryPolicy

C = grpc.StatusCode


def test_defaults_match_the_design() -> None:
    """The default policy classifies, retries and times out as DESIGN.md §6 documents."""
    policy = RpcPolicy()
    assert policy.breaker == {}
    assert policy.breaker_scope == "target"
    assert set(policy.failure_codes) == {
        C.UNAVAILABLE,
        C.DEADLINE_EXCEEDED,
        C.INTERNAL,
        C.UNKNOWN,
        C.DATA_LOSS,
        C.RESOURCE_EXHAUSTED,
    }
    assert policy.ignored_codes == (C.CANCELLED,)
    assert policy.retry == RpcRetryPolicy()
    assert policy.budget is None
    assert policy.default_timeout is None


def test_retry_defaults_follow_grfc_a6_names() -> None:
    """RpcRetryPolicy defaults: 3 attempts, 0.1 s to 1 s backoff doubling, UNAVAILABLE only."""
    retry = RpcRetryPolicy()
    assert (retry.max_attempts, retry.initial_backoff, retry.max_backoff) == (3, 0.1, 1.0)
    assert retry.backoff_multiplier == 2.0
    assert retry.retryable_status_codes == (C.UNAVAILABLE,)


def test_max_attempts_above_five_is_capped_at_five() -> None:
    """Values above 5 are treated as 5 without a refusal, as gRFC A6 says."""
    assert RpcRetryPolicy(max_attempts=9).max_attempts == 5
    assert RpcPolicy(retry={"max_attempts": 100}).retry == RpcRetryPolicy(max_attempts=5)


def test_codes_are_accepted_as_names_in_any_case_or_members() -> None:
    """Status codes may be names in any case or grpc.StatusCode members; repeats collapse."""
    policy = RpcPolicy(
        failure_codes=["unavailable", " Internal ", C.UNAVAILABLE],
        ignored_codes=[C.CANCELLED, "not_found"],
        retry={"retryable_status_codes": ["resource_exhausted"]},
    )
    assert policy.failure_codes == (C.UNAVAILABLE, C.INTERNAL)
    assert policy.ignored_codes == (C.CANCELLED, C.NOT_FOUND)
    assert policy.retry is not None
    assert policy.retry.retryable_status_codes == (C.RESOURCE_EXHAUSTED,)


def test_policy_is_frozen() -> None:
    """A policy cannot be changed after construction: interceptors compile it once."""
    policy = RpcPolicy()
    with pytest.raises(ValueError, match="frozen"):
        policy.default_timeout = 3.0  # type: ignore[misc]


def test_budget_and_no_retry_are_accepted() -> None:
    """A RetryBudget instance is kept as given; retry=None means a single attempt."""
    budget = RetryBudget(max_tokens=4)
    policy = RpcPolicy(retry=None, budget=budget, default_timeout=2)
    assert policy.budget is budget
    assert policy.retry is None
    assert policy.default_timeout == 2.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"breaker": {"failure_threshold": 0}}, "RpcPolicy.breaker.failure_threshold must be >= 1"),
        ({"breaker": {"failure_rate_threshold": 50}}, "RpcPolicy.breaker.failure_rate_threshold"),
        ({"breaker": {"recovery_timeout": "soon"}}, "RpcPolicy.breaker.recovery_timeout"),
        ({"breaker": {"threshold": 3}}, "RpcPolicy.breaker.threshold is not a setting"),
        ({"breaker": {"name": "x"}}, "RpcPolicy.breaker.name cannot be set here"),
        ({"breaker": {"clock": None}}, "RpcPolicy.breaker.clock cannot be set here"),
        ({"breaker": {"record_exceptions": (OSError,)}}, "RpcPolicy.breaker.record_exceptions"),
        ({"breaker": [("failure_threshold", 3)]}, "RpcPolicy.breaker: must be a dict"),
        ({"breaker_scope": "host"}, "RpcPolicy.breaker_scope"),
        ({"failure_codes": ["UNAVAILABLE", "BROKEN"]}, "RpcPolicy.failure_codes: unknown status"),
        ({"failure_codes": "UNAVAILABLE"}, "RpcPolicy.failure_codes: must be a list"),
        ({"failure_codes": ["OK"]}, "RpcPolicy.failure_codes: OK is the one status"),
        ({"ignored_codes": [14]}, "RpcPolicy.ignored_codes: unknown status code 14"),
        ({"retry": {"max_attempts": 1}}, "RpcPolicy.retry.max_attempts"),
        ({"retry": {"max_attempts": True}}, "RpcPolicy.retry.max_attempts"),
        ({"retry": {"initial_backoff": 0}}, "RpcPolicy.retry.initial_backoff"),
        ({"retry": {"max_backoff": float("inf")}}, "RpcPolicy.retry.max_backoff"),
        ({"retry": {"backoff_multiplier": 0.5}}, "RpcPolicy.retry.backoff_multiplier"),
        ({"retry": {"retryable_status_codes": []}}, "RpcPolicy.retry.retryable_status_codes"),
        ({"retry": {"initial_backoff": 2.0}}, "RpcPolicy.retry: max_backoff (1s) must be >="),
        ({"retry": {"attempts": 3}}, "RpcPolicy.retry.attempts is not a field"),
        ({"retry": 3}, "RpcPolicy.retry"),
        ({"budget": 10}, "RpcPolicy.budget"),
        ({"default_timeout": 0}, "RpcPolicy.default_timeout"),
        ({"default_timeout": True}, "RpcPolicy.default_timeout"),
        ({"default_timeout": float("nan")}, "RpcPolicy.default_timeout"),
        ({"timeout": 1.0}, "RpcPolicy.timeout is not a field; valid: breaker,"),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(
    kwargs: dict[str, Any], message: str
) -> None:
    """Every bad value is a plain ValueError naming the field, without pydantic links."""
    with pytest.raises(ValueError, match="^" + re.escape(message)) as caught:
        RpcPolicy(**kwargs)
    assert "errors.pydantic.dev" not in str(caught.value)
    assert type(caught.value) is ValueError


def test_codes_both_failed_and_ignored_are_refused() -> None:
    """A status cannot be both a failure and ignored: the message names the code."""
    with pytest.raises(ValueError, match="both name UNAVAILABLE"):
        RpcPolicy(ignored_codes=["CANCELLED", "unavailable"])


def test_every_bad_field_gets_its_own_line() -> None:
    """Several bad fields are all reported, one line each."""
    with pytest.raises(ValueError, match="default_timeout") as caught:
        RpcPolicy(breaker_scope="x", default_timeout=-1, retry={"max_attempts": 0})
    lines = str(caught.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "RpcPolicy.breaker_scope",
        "RpcPolicy.retry.max_attempts",
        "RpcPolicy.default_timeout",
    ]


def test_retry_policy_alone_names_its_own_fields() -> None:
    """RpcRetryPolicy built directly names RpcRetryPolicy.<field>."""
    with pytest.raises(ValueError, match=r"^RpcRetryPolicy\.max_backoff: "):
        RpcRetryPolicy(max_backoff=-1)


def test_policy_is_a_pydantic_model_with_no_extra_fields() -> None:
    """Both policies are pydantic models that forbid unknown fields."""
    for model in (RpcPolicy, RpcRetryPolicy):
        assert issubclass(model, BaseModel)
        assert model.model_config.get("extra") == "forbid"
        assert model.model_config.get("frozen") is True
