"""GET /tasks/live/: the studio page's one poll for all of its cards in flight (``modify.live``).

Each card in flight carries the version it was rendered at; the page's poller
sends those back every 3 s. Nothing changed: an empty 204, read from the
session cache and one indexed query. Something changed: only those cards, each
swapping itself in by its id (out of band). Nothing in flight any more: 286,
and htmx stops polling; a new task starts the poller again.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from modify import failures
from modify.models import ModifyTask
from tests.factories import make_member, make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
HTMX = {"HX-Request": "true", "HX-Current-URL": "http://testserver/"}
SINCE = re.compile(r'<input type="hidden" name="since" value="([^"]+)">')


def studio_versions(client):
    """What the studio page's poller sends: the ``since`` value of each card it shows in flight."""
    return SINCE.findall(client.get("/").content.decode())


def poll(client, since, headers=HTMX):
    return client.get("/tasks/live/", {"since": since}, headers=headers)


def studio_page_card(client, task):
    page = client.get("/").content.decode()
    return re.search(rf'<article [^>]*id="task-{task.pk}".*?</article>', page, re.S).group(0)


def cards_in(response):
    """The ids of the cards an answer carries, and whether each swaps itself in out of band."""
    return {m[0]: bool(m[1]) for m in re.findall(r'<article [^>]*id="task-([0-9a-f-]+)"[^>]*?( hx-swap-oob="true")?\s*>',
                                                 response.content.decode())}


def test_the_studio_polls_once_for_the_whole_page(signed_in, member):
    tasks = [make_task(member, state) for state in (S.QUEUED, S.SUBMITTING, S.UNCONFIRMED, S.GENERATING, S.ARCHIVING)]
    done = make_task(member, S.SUCCEEDED)
    page = signed_in.get("/").content.decode()
    poller = re.search(r'<div id="live-status"[^>]*>', page).group(0)
    assert 'hx-get="/tasks/live/"' in poller and 'hx-trigger="every 3s"' in poller
    assert 'hx-include="#task-list input[name=since]"' in poller and 'hx-swap="none"' in poller
    # No card polls by itself, and each keeps its real link for a page without JavaScript.
    assert "/status/" not in page and page.count("hx-trigger") == 1
    assert sorted(v.split(":")[0] for v in SINCE.findall(page)) == sorted(str(t.pk) for t in tasks)
    assert f'href="/tasks/{done.pk}/"' in page and all(f'href="/tasks/{t.pk}/"' in page for t in tasks)


def test_a_studio_with_nothing_in_flight_does_not_poll(signed_in, member):
    make_task(member, S.SUCCEEDED)
    make_task(member, S.FAILED)
    page = signed_in.get("/").content.decode()
    assert 'id="live-status"' in page  # where a new task starts it
    assert "hx-get" not in page and "hx-trigger" not in page and 'name="since"' not in page


def test_an_unchanged_set_answers_an_empty_204_from_the_cache_and_one_query(signed_in, member, settings, tmp_path):
    if settings.CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
        # A directory of this test's own: every process shares var/cache, and another run clearing it meanwhile
        # would send this session to its table.
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": str(tmp_path / "cache")}}
        signed_in.force_login(member)
    for _ in range(10):
        make_task(member, S.GENERATING)
    since = studio_versions(signed_in)
    assert len(since) == 10
    with CaptureQueriesContext(connection) as queries:
        response = poll(signed_in, since)
    assert response.status_code == 204 and response.content == b""
    assert len(queries) <= 3, [q["sql"] for q in queries]
    # The session came from the cache: the session table is not read on a poll.
    assert not [q for q in queries if "django_session" in q["sql"]]
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db"
    assert len(queries) == 1  # the versions of the ten cards (the member, too, comes from the cache)


def test_only_the_changed_card_comes_back_out_of_band(signed_in, member):
    moving, _, _ = (make_task(member, S.GENERATING, prompt=f"card {i}") for i in range(3))
    waiting = make_task(member, S.UNCONFIRMED, prompt="waiting")
    since = studio_versions(signed_in)
    assert moving.result_found("https://cdn.example.com/result.mp4")
    assert waiting.no_answer(failures.sentence("awaiting_callback"))  # its state stays, its note is new

    response = poll(signed_in, since)
    assert response.status_code == 200  # others still in flight: keep polling
    assert cards_in(response) == {str(moving.pk): True, str(waiting.pk): True}
    body = response.content.decode()
    assert '<span class="phase">Archiving</span>' in body and '<li class="current">Archiving</li>' in body
    assert f'<p class="note">{waiting.status_note}</p>' in body
    assert "card 1" not in body and "card 2" not in body and "<html" not in body
    # The page now holds the new versions: the next poll has nothing to say.
    since = [v for v in since if not v.startswith((str(moving.pk), str(waiting.pk)))]
    since += SINCE.findall(body)
    assert poll(signed_in, since).status_code == 204


def test_a_version_the_page_got_wrong_only_sends_that_card_again(signed_in, member):
    right, wrong = make_task(member, S.GENERATING), make_task(member, S.QUEUED)
    since = [v for v in studio_versions(signed_in) if v.startswith(str(right.pk))] + [f"{wrong.pk}:nonsense"]
    response = poll(signed_in, since)
    assert response.status_code == 200 and cards_in(response) == {str(wrong.pk): True}


def test_a_finished_card_is_delivered_and_then_the_poll_stops(signed_in, member):
    succeeding = make_task(member, S.ARCHIVING, prompt="nearly there")
    failing = make_task(member, S.GENERATING, prompt="about to fail")
    since = studio_versions(signed_in)
    assert succeeding.archived()
    assert failing.fail(failures.sentence("generation_failed", reason="content policy"))

    response = poll(signed_in, since)
    assert response.status_code == 286  # htmx stops polling, after swapping in the final states
    assert cards_in(response) == {str(succeeding.pk): True, str(failing.pk): True}
    body = response.content.decode()
    assert 'data-state="succeeded"' in body and 'data-state="failed"' in body
    assert f'<p class="error">{failing.error_message}</p>' in body
    assert 'name="since"' not in body and "hx-get" not in body  # the final cards follow nothing


def test_one_finished_among_others_in_flight_keeps_polling(signed_in, member):
    finishing, running = make_task(member, S.ARCHIVING), make_task(member, S.GENERATING)
    since = studio_versions(signed_in)
    assert finishing.archived()
    response = poll(signed_in, since)
    assert response.status_code == 200 and cards_in(response) == {str(finishing.pk): True}
    assert poll(signed_in, [v for v in since if v.startswith(str(running.pk))]).status_code == 204


def test_nothing_to_follow_stops_at_once(signed_in, member):
    response = poll(signed_in, [])
    assert response.status_code == 286 and response.content == b""


def test_a_new_task_starts_the_poller_again(signed_in, member, monkeypatch):
    monkeypatch.setattr("modify.enqueue.send_to_provider", lambda task: None)
    make_task(member, S.SUCCEEDED)
    assert "hx-get" not in signed_in.get("/").content.decode()  # stopped: nothing in flight
    response = signed_in.post("/tasks/", {"video_url": "https://cdn.example.com/clip.mp4", "prompt": "a snowy night"},
                              headers=HTMX)
    assert response.status_code == 200
    task = ModifyTask.objects.get(state=S.QUEUED)
    body = response.content.decode()
    poller = re.search(r'<div id="live-status"[^>]*>', body).group(0)
    assert 'hx-swap-oob="true"' in poller and 'hx-get="/tasks/live/"' in poller and 'hx-trigger="every 3s"' in poller
    since = SINCE.findall(body)
    assert [v.split(":")[0] for v in since] == [str(task.pk)]
    assert poll(signed_in, since).status_code == 204  # the version the new card came with is current


def test_a_member_never_receives_another_members_cards(signed_in, member, other):
    theirs = [make_task(other, S.GENERATING, prompt="their secret sunset", shared=True) for _ in range(2)]
    mine = make_task(member, S.GENERATING, prompt="my card")
    # Ivan's ids, with versions that will not match: the answer is as if they did not exist.
    response = poll(signed_in, [f"{t.pk}:stale" for t in theirs])
    assert response.status_code == 286 and response.content == b""
    response = poll(signed_in, [f"{t.pk}:stale" for t in theirs] + [f"{mine.pk}:stale"])
    assert response.status_code == 200 and cards_in(response) == {str(mine.pk): True}
    assert "their secret sunset" not in response.content.decode()


def test_malformed_versions_are_refused_with_a_reason(signed_in, member):
    task = make_task(member, S.GENERATING)
    response = poll(signed_in, ["not-a-task:abc", f"{task.pk}:stale"])
    assert response.status_code == 400
    assert response.content.decode() == "Each since value must be <task id>:<version>, as the studio page sends it."
    too_many = poll(signed_in, [f"{task.pk}:x"] * 101)
    assert too_many.status_code == 400 and "at most 100 cards" in too_many.content.decode()


def test_without_htmx_the_studio_itself_shows_the_states(signed_in, member):
    task = make_task(member, S.GENERATING)
    response = poll(signed_in, [f"{task.pk}:stale"], headers={})
    assert response.status_code == 302 and response["Location"] == "/"


def test_only_get_is_allowed(signed_in):
    assert signed_in.post("/tasks/live/", headers=HTMX).status_code == 405


def test_an_ended_session_sends_the_whole_page_to_sign_in(client):
    task = make_task(make_member("olga"), S.GENERATING)
    response = poll(client, [f"{task.pk}:stale"], headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/?page=2"})
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=/%3Fpage%3D2"


def test_anonymous_without_htmx_is_sent_to_sign_in(client):
    response = client.get("/tasks/live/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/tasks/live/"


def test_a_live_card_counts_its_time_on_the_page(signed_in, member):
    """Unchanged cards are not sent again: the page counts their elapsed time from the second it was rendered at."""
    task = make_task(member, S.GENERATING, created_at=timezone.now() - timedelta(seconds=75))
    done = make_task(member, S.SUCCEEDED)
    card = studio_page_card(signed_in, task)
    assert re.search(r'<p class="status" data-elapsed="7[56]"><span class="phase">Generating</span>', card)
    assert '<span class="elapsed">1m 1' in card
    assert "data-elapsed" not in studio_page_card(signed_in, done)  # a finished card's time is final
