"""team.figures: the stats of a period, checked against figures worked out by hand.

The fixture: two days (10 and 11 March 2025, UTC), two members (maria and
ivan), two keys (maria's own and the team's) plus tasks on the
environment's key, known times from submit to result, and known failure
sentences. Two tasks sit just outside the period, at the edges of midnight.
"""

from datetime import date, datetime, timedelta, timezone as tz

import pytest

from modify import failures
from modify.models import ModifyTask
from team import figures
from team.figures import Day, Period
from tests.factories import backdate, make_key, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
MARCH_10, MARCH_11 = date(2025, 3, 10), date(2025, 3, 11)
GENERATION_FAILED = "The provider could not generate this video (…). Try a different prompt or video."
PERIOD = Period(MARCH_10, MARCH_11)


def at(day, hour, minute=0, second=0):
    return datetime(2025, 3, day, hour, minute, second, tzinfo=tz.utc)


def task(owner, state, created, *, took=None, credits=None, failure=None, **make):
    """A task created at ``created``; ``took``: seconds from submit to result (a finished task)."""
    made = make_task(owner, state, error=failure or "The provider gave up.", **make)
    moments = {"created_at": created, "credits": credits}
    if took is not None:
        submitted = created + timedelta(minutes=1)
        moments.update(submitting_at=submitted, finished_at=submitted + timedelta(seconds=took))
    return backdate(made, **moments)


@pytest.fixture
def fixture(settings, member, other):
    """maria and ivan's tasks; what each one adds to the figures is said beside it."""
    settings.TIME_ZONE = "UTC"
    mine = make_key("Maria's key", owner=member, secret="sk-figures-test-1111", created_by=member)
    team = make_key("Team key", secret="sk-figures-test-2222")
    generation_failed = failures.sentence("generation_failed", reason="the prompt was refused")
    # 10 March: 2 succeeded, 2 failed.
    task(member, S.SUCCEEDED, at(10, 0, 0, 0), took=60, credits=10, api_key=mine)
    task(member, S.SUCCEEDED, at(10, 9), took=120, credits=10, api_key=team)
    task(other, S.FAILED, at(10, 12), credits=10, api_key=team, failed_stage=S.GENERATING, failure=generation_failed)
    task(other, S.FAILED, at(10, 23, 59, 59))  # failed before anything was sent: no credits, no sentence key
    # 11 March: 3 succeeded, 2 failed, 2 in flight.
    task(other, S.SUCCEEDED, at(11, 0, 0, 0), took=300, credits=20)  # on the environment's key
    task(member, S.SUCCEEDED, at(11, 8), took=180, credits=10, api_key=mine)
    task(other, S.SUCCEEDED, at(11, 9), took=90, credits=10, api_key=team)
    task(member, S.FAILED, at(11, 10), credits=10, api_key=mine, failed_stage=S.GENERATING, failure=generation_failed)
    backdate(task(other, S.FAILED, at(11, 11)), failure_key="source_unusable")
    task(member, S.GENERATING, at(11, 12), credits=10, api_key=team)
    task(other, S.QUEUED, at(11, 23, 59, 59))
    # Just outside the period.
    task(member, S.FAILED, at(9, 23, 59, 59), credits=10, api_key=mine, failed_stage=S.GENERATING,
         failure=generation_failed)
    task(other, S.SUCCEEDED, at(12, 0, 0, 0), took=9999, credits=50, api_key=team)
    return mine, team


def test_tasks_per_day_by_outcome(fixture):
    assert figures.tasks_per_day(PERIOD) == [
        Day(MARCH_10, succeeded=2, failed=2, in_flight=0),
        Day(MARCH_11, succeeded=3, failed=2, in_flight=2),
    ]


def test_days_without_tasks_are_shown_as_zero(fixture):
    days = figures.tasks_per_day(Period(date(2025, 3, 8), MARCH_10))
    assert days == [Day(date(2025, 3, 8)), Day(date(2025, 3, 9), failed=1), Day(MARCH_10, succeeded=2, failed=2)]


def test_totals_and_success_rate(fixture):
    shown = figures.for_period(PERIOD)
    assert (shown.total, shown.succeeded, shown.failed, shown.in_flight) == (11, 5, 4, 2)
    # 5 succeeded of 9 finished (the 2 in flight are left out).
    assert shown.success_rate == pytest.approx(55.5556, abs=1e-4)


def test_median_and_95th_percentile_from_submit_to_result(fixture):
    # The 5 succeeded tasks took 60, 90, 120, 180 and 300 seconds.
    shown = figures.for_period(PERIOD)
    assert shown.durations.count == 5
    assert shown.median == 120
    # Rank 0.95 × (5 - 1) = 3.8: 180 + 0.8 × (300 - 180).
    assert shown.p95 == pytest.approx(276)


@pytest.mark.parametrize("took, median, p95", [
    ([42], 42, 42),
    ([10, 20], 15, 19.5),  # rank 0.95: 10 + 0.95 × 10
    ([5, 1, 4, 2, 3, 100, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 11, 20),  # rank 19 of 0..20
    ([3, 1, 2, 4], 2.5, 3.85),  # rank 2.85: 3 + 0.85 × 1
])
def test_percentiles_by_the_database_match_the_hand_count(member, took, median, p95):
    for seconds in took:
        task(member, S.SUCCEEDED, at(10, 12), took=seconds)
    assert figures.durations(PERIOD) == figures.Durations(len(took), median, pytest.approx(p95))


def test_percentiles_interpolate_between_ranks():
    assert figures.percentile([60, 90, 120, 180], 50) == 105
    assert figures.percentile([10], 95) == 10
    assert figures.percentile([], 50) is None


def test_credits_per_member(fixture):
    members, _keys = figures.credits_spent(PERIOD)
    assert members == [
        figures.Spender("maria", tasks=5, credits=50),
        figures.Spender("ivan", tasks=3, credits=40),
    ]
    assert figures.for_period(PERIOD).credits == 90


def test_credits_per_key_with_the_environment_key_for_tasks_without_one(fixture):
    _members, keys = figures.credits_spent(PERIOD)
    assert keys == [
        figures.Spender("Team key (••••2222)", tasks=4, credits=40, detail="team"),
        figures.Spender("Maria's key (••••1111)", tasks=3, credits=30, detail="maria"),
        figures.Spender("Environment/sandbox key", tasks=1, credits=20, detail="environment"),
    ]


def test_top_failure_reasons_show_the_sentence_without_its_facts(fixture):
    assert figures.failure_reasons(PERIOD) == [
        figures.Reason("generation_failed", GENERATION_FAILED, 2),
        figures.Reason("", "other", 1),
        figures.Reason("source_unusable", "The video URL cannot be used: …", 1),
    ]


def test_days_follow_the_site_time_zone(fixture, settings):
    """In Berlin (UTC+1 in March) a task made at 23:59:59 UTC belongs to the next day."""
    settings.TIME_ZONE = "Europe/Berlin"
    assert figures.tasks_per_day(PERIOD) == [
        Day(MARCH_10, succeeded=2, failed=2, in_flight=0),  # gains the failed one of 9 March, 23:59:59 UTC
        # Gains the failed one of 10 March, 23:59:59 UTC; loses the queued one of 11 March, 23:59:59 UTC.
        Day(MARCH_11, succeeded=3, failed=3, in_flight=1),
    ]


def test_an_empty_period(db):
    shown = figures.for_period(PERIOD)
    assert shown.days == [Day(MARCH_10), Day(MARCH_11)]
    assert (shown.total, shown.success_rate, shown.median, shown.p95, shown.credits) == (0, None, None, None, 0)
    assert shown.members == shown.keys == shown.reasons == []


def test_a_reason_no_longer_in_the_sentences_is_named_by_its_key():
    assert figures.reason_text("retired_sentence") == "other (retired_sentence)"


def test_all_figures_take_four_queries(fixture, django_assert_num_queries):
    with django_assert_num_queries(4):
        figures.for_period(PERIOD)


def test_days_across_a_daylight_saving_change(settings, member):
    """Berlin moves from UTC+1 to UTC+2 on 30 March 2025: each task still lands on its local day."""
    settings.TIME_ZONE = "Europe/Berlin"
    around_the_change = Period(date(2025, 3, 29), date(2025, 3, 31))
    assert around_the_change.fixed_offset is None and PERIOD.fixed_offset == 3600
    task(member, S.QUEUED, at(29, 22, 59, 59))  # 29 March, 23:59:59 CET
    task(member, S.QUEUED, at(29, 23, 0, 0))  # 30 March, 00:00 CET
    task(member, S.QUEUED, at(30, 21, 59, 59))  # 30 March, 23:59:59 CEST
    task(member, S.QUEUED, at(30, 22, 0, 0))  # 31 March, 00:00 CEST
    assert [day.in_flight for day in figures.tasks_per_day(around_the_change)] == [1, 2, 1]


def test_two_keys_with_the_same_label_and_ending_stay_apart(member, other):
    for owner in (member, other):
        key = make_key("kie.ai", owner=owner, secret="sk-figures-test-9999", created_by=owner)
        task(owner, S.GENERATING, at(10, 12), credits=10, api_key=key)
    _members, keys = figures.credits_spent(PERIOD)
    assert keys == [figures.Spender("kie.ai (••••9999)", 1, 10, detail="ivan"),
                    figures.Spender("kie.ai (••••9999)", 1, 10, detail="maria")]
