"""GET /tasks/<id>/status/: one live status card, which polls itself every few seconds.

The studio now follows all its cards with one poll (tests/test_live_status.py);
this endpoint stays for pages still open from before, whose cards each poll it.
It only reads the database, and once the task is finished it answers 286 so htmx
stops polling. A live task's card shows its ``status_note``; only a failed one shows
``error_message``, with the way forward (try again, or the new attempt once made).
The card is the studio's own, so these also check what the studio's cards show."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from modify import failures, intake
from modify.models import ModifyTask
from tests.factories import make_member, make_task

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
S = ModifyTask.State


def task_of(owner, state, **fields):
    """A task of ``owner`` in ``state``, created 75 seconds ago."""
    return make_task(owner, state, created_at=timezone.now() - timedelta(seconds=75), **fields)


def status(client, task, htmx=True):
    return client.get(f"/tasks/{task.pk}/status/", **(HTMX if htmx else {}))


def test_an_in_flight_task_keeps_polling(signed_in, member):
    task = task_of(member, S.GENERATING)
    response = status(signed_in, task)
    assert response.status_code == 200
    card = response.content.decode()
    assert card.lstrip().startswith(f'<article class="card state-generating" id="task-{task.pk}"')
    assert f'hx-get="/tasks/{task.pk}/status/"' in card
    assert 'hx-trigger="every 3s"' in card
    assert '<span class="phase">Generating</span>' in card
    assert '<span class="elapsed">1m 15s</span>' in card
    # The progress strip: queued and submitting behind, generating now.
    assert '<li class="done">Queued</li>' in card
    assert '<li class="done">Submitting</li>' in card
    assert '<li class="current">Generating</li>' in card
    assert '<li>Archiving</li>' in card  # a step not reached has no class
    assert '<p class="note">' not in card and '<p class="error">' not in card
    assert "<html" not in card


def test_a_retry_reason_is_shown_while_queued(signed_in, member):
    task = task_of(member, S.SUBMITTING)
    reason = "The provider is busy."
    assert task.retry_later(30, reason, failures.sentence("waiting_to_retry", reason=reason))
    assert task.state == S.QUEUED and task.error_message == ""
    card = status(signed_in, task).content.decode()
    assert '<p class="note">Waiting to retry: The provider is busy.</p>' in card
    assert '<p class="error">' not in card  # error_message is only a failure's reason
    assert '<li class="current">Queued</li>' in card
    assert 'hx-get="' in card


def test_an_unconfirmed_task_says_what_it_waits_for(signed_in, member):
    task = task_of(member, S.UNCONFIRMED)
    assert task.no_answer("The provider did not answer in time; waiting for its callback.")
    card = status(signed_in, task).content.decode()
    assert '<span class="phase">Awaiting the provider</span>' in card
    assert f'<p class="note">{task.status_note}</p>' in card and task.status_note
    # Shown as still submitting on the progress strip.
    assert '<li class="done">Queued</li>' in card and '<li class="current">Submitting</li>' in card
    assert 'hx-get="' in card


@pytest.mark.parametrize("state", [S.SUCCEEDED, S.FAILED])
def test_a_finished_task_stops_htmx_polling(signed_in, member, state):
    task = task_of(member, state)
    response = status(signed_in, task)
    assert response.status_code == 286
    card = response.content.decode()
    assert f'id="task-{task.pk}"' in card
    assert "hx-get" not in card and "hx-trigger" not in card
    assert f'data-state="{state}"' in card
    assert '<ol class="steps"' not in card


def test_without_htmx_a_finished_card_is_a_plain_200(signed_in, member):
    task = task_of(member, S.SUCCEEDED)
    response = status(signed_in, task, htmx=False)
    assert response.status_code == 200
    assert re.search(r'<span class="phase">Done</span>\s+after <span class="elapsed">1m 1[45]s</span>', response.content.decode())


def test_a_failed_task_shows_why(signed_in, member):
    message = "The provider account is out of credits. Ask staff to top it up."
    task = task_of(member, S.FAILED, failed_stage=S.SUBMITTING, error_code=402, error=message)
    card = status(signed_in, task).content.decode()
    assert '<span class="phase">Failed</span>' in card
    assert f'<p class="error">{message}</p>' in card
    assert '<p class="note">' not in card
    assert f'<form method="post" action="/tasks/{task.pk}/retry/">' in card and "Try again" in card


def test_a_failed_task_that_was_retried_links_the_new_attempt(signed_in, member):
    task = task_of(member, S.FAILED)
    again = intake.retry(task, by=member)
    card = status(signed_in, task).content.decode()
    assert f'<a class="note" href="/tasks/{again.pk}/">See the new attempt</a>' in card
    assert "/retry/" not in card and "Try again" not in card


def test_the_card_costs_at_most_three_queries(signed_in, member, django_assert_max_num_queries):
    task = task_of(member, S.GENERATING)
    with django_assert_max_num_queries(3):
        assert status(signed_in, task).status_code == 200


def test_another_members_task_is_not_found_even_when_shared(signed_in, other):
    for task in (task_of(other, S.GENERATING, shared=True), task_of(other, S.SUCCEEDED, shared=True)):
        assert status(signed_in, task).status_code == 404


def test_anonymous_is_sent_to_sign_in(client, member):
    task = task_of(member, S.GENERATING)
    response = status(client, task, htmx=False)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/tasks/{task.pk}/status/"
    assert "a snowy winter night" not in response.content.decode()


def test_only_get_is_allowed(signed_in, member):
    task = task_of(member, S.GENERATING)
    assert signed_in.post(f"/tasks/{task.pk}/status/").status_code == 405


def test_an_expired_session_sends_the_whole_page_to_sign_in(client):
    task = make_task(make_member("olga"))
    response = client.get(
        f"/tasks/{task.pk}/status/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?page=2"}
    )
    assert response.status_code == 200
    # Back to the studio page after signing in, not to the bare status fragment.
    assert response["HX-Redirect"] == "/accounts/login/?next=/%3Fpage%3D2"
    assert response.content == b""


@pytest.mark.parametrize("current_url", [None, "https://elsewhere.example/phish"])
def test_without_a_page_of_ours_to_return_to_sign_in_has_no_next(client, member, current_url):
    task = make_task(member)
    headers = {"HX-Request": "true"} | ({"HX-Current-URL": current_url} if current_url else {})
    response = client.get(f"/tasks/{task.pk}/status/", headers=headers)
    assert response["HX-Redirect"] == "/accounts/login/"
