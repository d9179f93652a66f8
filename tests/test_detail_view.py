"""GET /tasks/<id>/ (the task page) and POST /tasks/<id>/share/ (the gallery toggle)."""

import html
import re
from datetime import timedelta

import pytest
from django.core.files import File
from django.utils import timezone

from modify.video_probe import write_poster
from modify.models import ModifyTask

pytestmark = pytest.mark.django_db


@pytest.fixture
def succeeded(member, clip, tmp_path):
    """A finished task of ``member`` with its source, result and poster archived."""

    def make(owner=None, **fields):
        video = clip(seconds=2)
        start = timezone.now() - timedelta(minutes=3)
        task = ModifyTask(
            owner=owner or member,
            prompt="turn the beach into a snowy winter night",
            source_kind=ModifyTask.Source.UPLOAD,
            source_name="beach.mp4",
            state=ModifyTask.State.SUCCEEDED,
            created_at=start,
            submitting_at=start + timedelta(seconds=1),
            generating_at=start + timedelta(seconds=3),
            archiving_at=start + timedelta(seconds=90),
            finished_at=start + timedelta(seconds=95),
            result_duration=2.0,
            result_width=320,
            result_height=240,
            result_size=video.stat().st_size,
            **fields,
        )
        with open(video, "rb") as fh:
            task.source_file.save("beach.mp4", File(fh), save=False)
            fh.seek(0)
            task.result_file.save("result.mp4", File(fh), save=False)
        poster = tmp_path / "poster.jpg"
        write_poster(video, poster)
        with open(poster, "rb") as fh:
            task.poster.save("poster.jpg", File(fh), save=False)
        task.save()
        return task

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
    assert f'<a class="button" href="{source_url}" download>Download original</a>' in page
    assert re.search(rf'<a class="button" href="{re.escape(result_url)}" download>Download result \(\d+\.\d KB\)</a>', page)
    assert f'href="/?remix={task.pk}">Remix</a>' in page
    assert "Result: 320×240, 2.0 s" in text_of(page)
    # The links really play: the archived bytes are served to a member.
    for url in (source_url, result_url, poster_url):
        response = signed_in.get(url)
        assert response.status_code == 200
        assert b"".join(response.streaming_content)


def test_the_timeline_lists_every_step_in_order(signed_in, succeeded):
    task = succeeded()
    page = page_of(signed_in, task)
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', page, re.S).group(1)
    entries = [text_of(item) for item in re.findall(r"<li>(.*?)</li>", timeline, re.S)]
    moments = [task.created_at, task.submitting_at, task.generating_at, task.archiving_at, task.finished_at]
    labels = ["Queued", "Submitted to the provider", "Provider generating", "Archiving the result", "Done"]
    assert entries == [f"{moment:%H:%M:%S} {label}" for moment, label in zip(moments, labels)]


def test_sandbox_results_are_labelled(signed_in, succeeded):
    assert '<span class="badge">Sandbox result</span>' in page_of(signed_in, succeeded(is_sandbox=True))
    assert "Sandbox result" not in page_of(signed_in, succeeded(is_sandbox=False))


def test_a_failed_task_says_where_and_why_in_plain_words(signed_in, member):
    task = ModifyTask.objects.create(
        owner=member,
        prompt="make it rain",
        source_kind=ModifyTask.Source.URL,
        source_url="https://example.com/clip.mp4",
        state=ModifyTask.State.FAILED,
        failed_stage=ModifyTask.State.GENERATING,
        error_code=501,
        error_message="The provider could not generate this video (content policy). Try a different prompt or video.",
        generating_at=timezone.now(),
        finished_at=timezone.now(),
    )
    page = page_of(signed_in, task)
    words = text_of(page)
    assert (
        "Failed while generating: The provider could not generate this video (content policy). "
        "Try a different prompt or video. (provider code 501)"
    ) in words
    assert 'role="alert"' in page
    assert "No result." in words and "No result yet." not in words
    assert "Download result" not in words and "Remix" not in words
    assert "Failed" in re.search(r'<ol class="timeline">(.*?)</ol>', page, re.S).group(1)
    # A URL source the app could not fetch is linked, not embedded.
    assert '<a href="https://example.com/clip.mp4" rel="noopener noreferrer">https://example.com/clip.mp4</a>' in page
    assert 'id="source-video"' not in page


def test_a_url_sources_secrets_are_shown_to_its_owner_only(client, signed_in, succeeded, other):
    url = "https://user:pw@cdn.example.com/clip.mp4?X-Amz-Signature=SECRETSIG#t=1"
    task = succeeded(source_url=url)
    mine = page_of(signed_in, task)
    assert f'<a href="{html.escape(url)}" rel="noopener noreferrer">https://cdn.example.com/clip.mp4</a>' in mine
    assert 'id="source-video"' in mine  # the archived copy plays
    client.force_login(other)
    theirs = page_of(client, task)
    assert "From https://cdn.example.com/clip.mp4" in text_of(theirs)
    assert "SECRETSIG" not in theirs and "pw@" not in theirs


def test_a_task_in_flight_says_it_is_still_working(signed_in, member):
    task = ModifyTask.objects.create(
        owner=member, prompt="make it rain", source_kind="url", source_url="https://example.com/a.mp4",
        state=ModifyTask.State.GENERATING,
    )
    page = page_of(signed_in, task)
    words = text_of(page)
    assert "Still working: generating for" in words
    assert "No result yet." in words
    assert f'hx-get="/tasks/{task.pk}/"' in page  # the page refreshes itself while in flight


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
    for state in (ModifyTask.State.FAILED, ModifyTask.State.GENERATING):
        task = ModifyTask.objects.create(owner=other, prompt="p", source_kind="url", state=state, shared=True)
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


def test_another_member_cannot_toggle_sharing(signed_in, succeeded, other):
    task = succeeded(owner=other, shared=True)
    assert signed_in.post(f"/tasks/{task.pk}/share/", {"shared": "0"}).status_code == 404
    task.refresh_from_db()
    assert task.shared is True


def test_sharing_is_changed_only_by_post(signed_in, succeeded):
    task = succeeded(shared=True)
    assert signed_in.get(f"/tasks/{task.pk}/share/?shared=0").status_code == 405
    task.refresh_from_db()
    assert task.shared is True
