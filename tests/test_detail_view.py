"""GET /tasks/<id>/ (the task page) and POST /tasks/<id>/share/ (the gallery toggle).

The page's timeline is the task's event log (``task.timeline()``)."""

import html
import re

import pytest

from modify.models import ModifyTask
from modify.states import Actor
from tests.factories import make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State


@pytest.fixture
def succeeded(member, clip):
    """A finished task of ``member`` (or ``owner``) with its source, result and poster archived."""

    def make(owner=None, **fields):
        video = clip(seconds=2)
        return make_task(owner or member, S.SUCCEEDED, prompt="turn the beach into a snowy winter night",
                         upload=video, result=video, provider_task_id="luma-task-1", **fields)

    return make


def page_of(client, task):
    response = client.get(f"/tasks/{task.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def text_of(page):
    """The page as a person reads it: no tags, collapsed spaces."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_a_finished_task_shows_prompt_both_videos_and_downloads(signed_in, succeeded):
    task = succeeded()
    page = page_of(signed_in, task)
    assert "<h1>“turn the beach into a snowy winter night”</h1>" in page
    source_url, result_url, poster_url = task.source_file.url, task.result_file.url, task.poster.url
    assert source_url.startswith("/media/sources/") and result_url.startswith("/media/results/")
    assert f'<video id="source-video" src="{source_url}"' in page
    assert f'<video id="result-video" src="{result_url}" poster="{poster_url}"' in page
    assert f'<a class="button" href="{source_url}?download" download>Download original</a>' in page
    assert re.search(rf'<a class="button" href="{re.escape(result_url)}\?download" download>Download result \(\d+\.\d KB\)</a>', page)
    assert f'href="/?remix={task.pk}">Remix</a>' in page
    assert "Result: 320×240, 2.0 s" in text_of(page)
    # The links really play: the archived bytes are served to a member.
    for url in (source_url, result_url, poster_url):
        response = signed_in.get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content)


def timeline_of(page):
    """The timeline's entries as a person reads them."""
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', page, re.S).group(1)
    return [text_of(item) for item in re.findall(r"<li>(.*?)</li>", timeline, re.S)]


def test_the_timeline_lists_every_step_in_order(signed_in, succeeded):
    task = succeeded()
    page = page_of(signed_in, task)
    labels = [
        "Created: made by a test factory",
        "Sending to the provider: attempt 1",
        "Asked the provider to generate the video",
        "The provider accepted the task: luma-task-1",
        "The result is ready; archiving it",
        "Archived: done",
    ]
    events = list(task.events.all())
    assert [event.kind for event in events] == ["created", "claim", "generate_sent", "accepted", "result_found", "archived"]
    assert timeline_of(page) == [f"{event.created_at:%H:%M:%S} {label}" for event, label in zip(events, labels, strict=True)]
    assert f'<time datetime="{events[0].created_at:%Y-%m-%dT%H:%M:%S}' in page


def test_repeated_identical_polls_are_one_timeline_line(signed_in, member):
    task = make_task(member, S.GENERATING, provider_task_id="luma-task-1")
    for answer in ["successFlag 0 (generating)"] * 3 + ["HTTP 503: maintenance"]:
        task.record("poll", actor=Actor.SYSTEM, detail=answer)
    entries = [entry.split(" ", 1)[1] for entry in timeline_of(page_of(signed_in, task))]
    assert entries[-2:] == ["Asked the provider: successFlag 0 (generating) (×3)", "Asked the provider: HTTP 503: maintenance"]


def test_sandbox_results_are_labelled(signed_in, succeeded):
    assert '<span class="badge">Sandbox result</span>' in page_of(signed_in, succeeded(is_sandbox=True))
    assert "Sandbox result" not in page_of(signed_in, succeeded(is_sandbox=False))


def test_a_failed_task_says_where_and_why_in_plain_words(signed_in, member):
    reason = "The provider could not generate this video (content policy). Try a different prompt or video."
    task = make_task(member, S.FAILED, prompt="make it rain", url="https://example.com/clip.mp4",
                     failed_stage=S.GENERATING, error_code=501, error=reason)
    page = page_of(signed_in, task)
    words = text_of(page)
    assert (
        "Failed while generating: The provider could not generate this video (content policy). "
        "Try a different prompt or video. (provider code 501)"
    ) in words
    assert '<div class="error" role="alert"><strong>Failed while generating:</strong>' in page
    assert "No result." in words and "No result yet." not in words
    assert "Download result" not in words and "Remix" not in words
    assert timeline_of(page)[-1].split(" ", 1)[1] == f"Failed: {reason}"
    # A URL source the app could not fetch is linked, not embedded.
    assert '<a href="https://example.com/clip.mp4" rel="noopener noreferrer">https://example.com/clip.mp4</a>' in page
    assert 'id="source-video"' not in page


def test_a_url_sources_secrets_are_shown_to_its_owner_only(client, signed_in, succeeded, other):
    url = "https://user:pw@cdn.example.com/clip.mp4?X-Amz-Signature=SECRETSIG#t=1"
    # A URL source whose copy was kept (the factory keeps it as an upload; the page reads source_url and source_file).
    task = succeeded(source_url=url)
    mine = page_of(signed_in, task)
    assert f'<a href="{html.escape(url)}" rel="noopener noreferrer">https://cdn.example.com/clip.mp4</a>' in mine
    assert 'id="source-video"' in mine  # the archived copy plays
    client.force_login(other)
    theirs = page_of(client, task)
    assert "From https://cdn.example.com/clip.mp4" in text_of(theirs)
    assert "SECRETSIG" not in theirs and "pw@" not in theirs


def test_a_task_in_flight_says_it_is_still_working(signed_in, member):
    task = make_task(member, S.GENERATING, prompt="make it rain", url="https://example.com/a.mp4")
    page = page_of(signed_in, task)
    words = text_of(page)
    assert "Still working: generating for" in words
    assert "No result yet." in words
    assert f'hx-get="/tasks/{task.pk}/"' in page  # the page refreshes itself while in flight
    assert '<div class="error" role="alert">' not in page


def test_a_waiting_task_shows_its_note_and_why_in_the_timeline(signed_in, member):
    task = make_task(member, S.UNCONFIRMED)
    assert task.no_answer("The provider did not answer in time; waiting for its callback.")
    page = page_of(signed_in, task)
    words = text_of(page)
    assert "Still working: awaiting the provider for" in words
    assert f'<p class="note">{task.status_note}</p>' in page and task.status_note
    assert timeline_of(page)[-1].split(" ", 1)[1] == "The provider did not answer; waiting for its callback"
    assert '<div class="error" role="alert">' not in page  # no failure reason on a live task


def test_a_finished_task_page_stops_refreshing(signed_in, succeeded):
    assert "hx-get" not in page_of(signed_in, succeeded())


def test_another_member_sees_a_shared_task_but_not_an_unshared_one(signed_in, succeeded, other):
    shared = succeeded(owner=other, shared=True)
    hidden = succeeded(owner=other, shared=False)
    page = page_of(signed_in, shared)
    assert "by ivan" in text_of(page)
    assert "Hide from gallery" not in page and "Share in gallery" not in page  # not theirs to toggle
    assert signed_in.get(f"/tasks/{hidden.pk}/").status_code == 404


def test_a_teammates_failed_or_running_task_is_not_shown(signed_in, other):
    for state in (S.FAILED, S.GENERATING):
        task = make_task(other, state, shared=True)
        assert signed_in.get(f"/tasks/{task.pk}/").status_code == 404


def test_anonymous_is_sent_to_sign_in(client, succeeded):
    task = succeeded()
    response = client.get(f"/tasks/{task.pk}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/tasks/{task.pk}/"


# --- Share toggle -----------------------------------------------------------------------------


def test_the_owner_can_hide_and_share_again(signed_in, succeeded):
    task = succeeded(shared=True)
    assert "Hide from gallery" in page_of(signed_in, task)
    response = signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "0"})
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    task.refresh_from_db()
    assert task.shared is False
    page = page_of(signed_in, task)
    assert "Share in gallery" in page
    assert '<input type="hidden" name="shared" value="1">' in page
    signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "1"})
    task.refresh_from_db()
    assert task.shared is True


def test_sharing_and_hiding_are_logged_as_the_members(signed_in, succeeded, member):
    task = succeeded(shared=True)

    def sharing_events():
        return [(e.kind, e.actor, e.actor_user) for e in task.events.filter(kind__in=["shared", "unshared"])]

    signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "0"})
    assert sharing_events() == [("unshared", Actor.MEMBER, member)]
    signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "0"})  # already hidden: nothing happened, nothing logged
    assert sharing_events() == [("unshared", Actor.MEMBER, member)]
    signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "1"})
    assert sharing_events() == [("unshared", Actor.MEMBER, member), ("shared", Actor.MEMBER, member)]
    entries = [entry.split(" ", 1)[1] for entry in timeline_of(page_of(signed_in, task))]
    assert entries[-2:] == ["Hidden from the gallery", "Shared with the team"]


def test_another_member_cannot_toggle_sharing(signed_in, succeeded, other):
    task = succeeded(owner=other, shared=True)
    assert signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "0"}).status_code == 404
    task.refresh_from_db()
    assert task.shared is True
    assert not task.events.filter(kind__in=["shared", "unshared"]).exists()


def test_sharing_is_changed_only_by_post(signed_in, succeeded):
    task = succeeded(shared=True)
    assert signed_in.get(f"/tasks/{task.pk}/share/?shared=0").status_code == 405
    task.refresh_from_db()
    assert task.shared is True
    assert not task.events.filter(kind__in=["shared", "unshared"]).exists()


@pytest.mark.parametrize("state", [S.GENERATING, S.FAILED])
def test_only_a_finished_result_can_be_shared_or_hidden(signed_in, member, state):
    task = make_task(member, state)
    assert signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "0"}).status_code == 404
    task.refresh_from_db()
    assert task.shared is True and not task.events.filter(kind__in=["shared", "unshared"]).exists()
