"""GET /tasks/<id>/status/: the live status card the studio polls every few seconds.

It only reads the database, and once the task is finished it answers 286 so htmx
stops polling."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from modify.models import ModifyTask

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def make_task(owner, state, **fields):
    now = timezone.now()
    return ModifyTask.objects.create(
        owner=owner,
        prompt="a snowy winter night",
        source_kind=ModifyTask.Source.URL,
        source_url="https://example.com/clip.mp4",
        state=state,
        created_at=now - timedelta(seconds=75),
        **fields,
    )


def status(client, task, htmx=True):
    return client.get(f"/tasks/{task.pk}/status/", **(HTMX if htmx else {}))


def test_an_in_flight_task_keeps_polling(signed_in, member):
    task = make_task(member, ModifyTask.State.GENERATING, generating_at=timezone.now())
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
    assert '<li class="">Archiving</li>' in card
    assert "<html" not in card


def test_a_retry_reason_is_shown_while_queued(signed_in, member):
    task = make_task(member, ModifyTask.State.QUEUED, error_message="The provider is busy; trying again shortly.")
    card = status(signed_in, task).content.decode()
    assert '<p class="note">The provider is busy; trying again shortly.</p>' in card
    assert 'hx-get="' in card


@pytest.mark.parametrize("state", [ModifyTask.State.SUCCEEDED, ModifyTask.State.FAILED])
def test_a_finished_task_stops_htmx_polling(signed_in, member, state):
    task = make_task(member, state, finished_at=timezone.now())
    response = status(signed_in, task)
    assert response.status_code == 286
    card = response.content.decode()
    assert f'id="task-{task.pk}"' in card
    assert "hx-get" not in card and "hx-trigger" not in card
    assert f'data-state="{state}"' in card
    assert '<ol class="steps"' not in card


def test_without_htmx_a_finished_card_is_a_plain_200(signed_in, member):
    task = make_task(member, ModifyTask.State.SUCCEEDED, finished_at=timezone.now())
    response = status(signed_in, task, htmx=False)
    assert response.status_code == 200
    assert re.search(r'<span class="phase">Done</span>\s+after <span class="elapsed">1m 1[45]s</span>', response.content.decode())


def test_a_failed_task_shows_why(signed_in, member):
    message = "The provider account is out of credits. Ask staff to top it up."
    task = make_task(
        member, ModifyTask.State.FAILED, failed_stage="submitting", error_code=402, error_message=message,
        finished_at=timezone.now(),
    )
    card = status(signed_in, task).content.decode()
    assert '<span class="phase">Failed</span>' in card
    assert f'<p class="error">{message}</p>' in card


def test_the_card_costs_at_most_three_queries(signed_in, member, django_assert_max_num_queries):
    task = make_task(member, ModifyTask.State.GENERATING)
    with django_assert_max_num_queries(3):
        assert status(signed_in, task).status_code == 200


def test_another_members_task_is_not_found_even_when_shared(signed_in, django_user_model):
    other = django_user_model.objects.create_user("ivan")
    task = make_task(other, ModifyTask.State.GENERATING, shared=True)
    assert status(signed_in, task).status_code == 404


def test_anonymous_is_sent_to_sign_in(client, member):
    task = make_task(member, ModifyTask.State.GENERATING)
    response = status(client, task, htmx=False)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/tasks/{task.pk}/status/"
    assert "a snowy winter night" not in response.content.decode()


def test_only_get_is_allowed(signed_in, member):
    task = make_task(member, ModifyTask.State.GENERATING)
    assert signed_in.post(f"/tasks/{task.pk}/status/").status_code == 405


@pytest.mark.django_db
def test_an_expired_session_sends_the_whole_page_to_sign_in(client, django_user_model):
    owner = django_user_model.objects.create_user("olga")
    task = ModifyTask.objects.create(owner=owner, prompt="p", source_kind="url", source_url="https://x/a.mp4")
    response = client.get(
        f"/tasks/{task.pk}/status/", headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?page=2"}
    )
    assert response.status_code == 200
    # Back to the studio page after signing in, not to the bare status fragment.
    assert response["HX-Redirect"] == "/accounts/login/?next=/%3Fpage%3D2"
    assert response.content == b""


@pytest.mark.django_db
@pytest.mark.parametrize("current_url", [None, "https://elsewhere.example/phish"])
def test_without_a_page_of_ours_to_return_to_sign_in_has_no_next(client, member, current_url):
    task = ModifyTask.objects.create(owner=member, prompt="p", source_kind="url", source_url="https://x/a.mp4")
    headers = {"HX-Request": "true"} | ({"HX-Current-URL": current_url} if current_url else {})
    response = client.get(f"/tasks/{task.pk}/status/", headers=headers)
    assert response["HX-Redirect"] == "/accounts/login/"
