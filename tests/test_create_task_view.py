"""POST /tasks/ (url "task-create"): the studio's form. Everything is checked before a task
exists; a good request becomes one queued task, with its "created" event, and nothing in the
request path talks to the provider."""

import html
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from modify.models import ModifyTask
from modify.states import Actor
from tests.factories import make_task

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def unreachable_provider(settings):
    """Any HTTP call to the provider (or the sandbox) from the request path would fail."""
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"


def upload(path, name=None):
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="video/mp4")


def field_errors(page, field):
    """The error text shown under one form field ('' when none)."""
    for block in page.split('<div class="field')[1:]:
        if f'<label for="id_{field}">' in block:
            found = re.search(r'<div class="error" role="alert">(.*?)</div>', block, re.S)
            return html.unescape(found.group(1)) if found else ""
    raise AssertionError(f"no {field} field on the page")


def form_errors(page):
    """The error shown above the fields (not tied to one field)."""
    head = page.split('<div class="field')[0]
    found = re.search(r'<div class="error" role="alert">(.*?)</div>', head, re.S)
    return html.unescape(found.group(1)) if found else ""


@pytest.fixture
def sent(monkeypatch):
    """The tasks handed to ``modify.enqueue.send_to_provider`` (nothing is really enqueued)."""
    tasks = []
    monkeypatch.setattr("modify.enqueue.send_to_provider", tasks.append)
    return tasks


def succeeded_task(owner, video, shared=True):
    return make_task(owner, ModifyTask.State.SUCCEEDED, prompt="turn it into a watercolour painting", result=video,
                     shared=shared)


# --- Who may submit -----------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in_and_nothing_is_created(client, clip):
    response = client.post("/tasks/", {"video": upload(clip()), "prompt": "a snowy night"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/tasks/"
    assert not ModifyTask.objects.exists()


def test_only_post_is_allowed(signed_in):
    assert reverse("task-create") == "/tasks/"
    assert signed_in.get("/tasks/").status_code == 405


# --- Good submissions -------------------------------------------------------------------------


def test_an_upload_becomes_one_queued_task_of_the_user(signed_in, member, clip, sent, django_capture_on_commit_callbacks):
    source = clip(seconds=2)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = signed_in.post(
            "/tasks/", {"video": upload(source, "beach day.mp4"), "prompt": "  a snowy winter night  ", "watermark": "ACME"}
        )
    assert response.status_code == 302
    assert response["Location"] == "/"
    task = ModifyTask.objects.get()
    assert task.owner == member
    assert task.state == ModifyTask.State.QUEUED  # no provider call happened on the way
    assert task.source_kind == ModifyTask.Source.UPLOAD
    assert task.prompt == "a snowy winter night"
    assert task.watermark == "ACME"
    assert task.source_name == "beach day.mp4"
    assert task.source_duration == pytest.approx(2.0, abs=0.05)
    with task.source_file.open("rb") as fh:
        assert fh.read() == source.read_bytes()
    assert task.source_file.name.startswith("sources/") and task.source_file.name.endswith(".mp4")
    assert len(callbacks) == 1  # its sending is enqueued once the row is committed
    assert [t.pk for t in sent] == [task.pk]
    created = task.events.get()  # the log starts with "created", by the member
    assert (created.kind, created.actor, created.actor_user) == ("created", Actor.MEMBER, member)
    assert (created.from_state, created.to_state) == ("", ModifyTask.State.QUEUED)
    assert created.detail == "from an upload, beach day.mp4"


def test_htmx_submission_returns_the_new_card_and_a_fresh_form(signed_in, clip):
    response = signed_in.post("/tasks/", {"video": upload(clip()), "prompt": "a snowy winter night"}, **HTMX)
    assert response.status_code == 200
    task = ModifyTask.objects.get()
    page = response.content.decode()
    assert "<html" not in page
    assert f'id="task-{task.pk}"' in page
    assert 'hx-swap-oob="afterbegin:#task-list"' in page
    assert f'<input type="hidden" name="since" value="{task.pk}:' in page  # the new card is followed...
    assert re.search(r'<div id="live-status" hidden hx-swap-oob="true" hx-get="/tasks/live/" hx-trigger="every 3s"', page)  # ...by the page's poll, started again
    assert 'id="task-form"' in page
    # The form is empty again, ready for the next video.
    assert re.search(r'<textarea name="prompt"[^>]*>\s*</textarea>', page)
    assert 'role="alert"' not in page


def test_a_url_submission_becomes_a_url_task(signed_in, member):
    url = "https://cdn.example.com/videos/clip.mp4"
    response = signed_in.post("/tasks/", {"video_url": url, "prompt": "film noir, black and white"})
    assert response.status_code == 302
    task = ModifyTask.objects.get()
    assert (task.owner, task.state, task.source_kind) == (member, ModifyTask.State.QUEUED, ModifyTask.Source.URL)
    assert task.source_url == url
    assert task.source_name == "clip.mp4"
    assert not task.source_file
    assert task.events.get().summary == f"Created: from {url}"


@pytest.mark.parametrize("container", ["mov", "avi"])
def test_mov_and_avi_uploads_are_accepted(signed_in, clip, container):
    source = clip(seconds=1, container=container)
    response = signed_in.post("/tasks/", {"video": upload(source), "prompt": "make it autumn"})
    assert response.status_code == 302, response.content.decode()[:2000]
    task = ModifyTask.objects.get()
    assert task.source_file.name.endswith(f".{container}")
    assert task.source_duration == pytest.approx(1.0, abs=0.1)


def test_a_clip_of_exactly_ten_seconds_is_accepted(signed_in, clip):
    response = signed_in.post("/tasks/", {"video": upload(clip(seconds=10)), "prompt": "make it autumn"})
    assert response.status_code == 302
    assert ModifyTask.objects.count() == 1


# --- Bad submissions: a specific message, and no task ----------------------------------------------


def bad_post(client, data, htmx=False):
    response = client.post("/tasks/", data, **(HTMX if htmx else {}))
    assert not ModifyTask.objects.exists()
    return response


def test_a_text_file_renamed_mp4_is_refused(signed_in):
    fake = SimpleUploadedFile("holiday.mp4", b"just some notes, not a video at all\n" * 20, content_type="video/mp4")
    response = bad_post(signed_in, {"video": fake, "prompt": "a snowy night"})
    assert field_errors(response.content.decode(), "video") == "“holiday.mp4”: This is not an MP4, MOV or AVI video."


def test_an_eleven_second_clip_is_refused_naming_the_limit(signed_in, clip):
    response = bad_post(signed_in, {"video": upload(clip(seconds=11), "long.mp4"), "prompt": "a snowy night"})
    error = field_errors(response.content.decode(), "video")
    assert error.startswith("“long.mp4”")
    assert "11 s long" in error and "the limit is 10 s" in error


def test_a_file_over_the_size_limit_is_refused(signed_in, clip, settings):
    settings.LUMA_MAX_VIDEO_BYTES = 1 * MB
    padded = clip().read_bytes().ljust(int(1.5 * MB), b"\0")
    video = SimpleUploadedFile("big.mp4", padded, content_type="video/mp4")
    response = bad_post(signed_in, {"video": video, "prompt": "a snowy night"})
    error = field_errors(response.content.decode(), "video")
    assert error.startswith("“big.mp4”")
    assert "the limit is 1 MB" in error


def test_the_too_large_message_shows_a_size_above_the_limit(signed_in, settings):
    settings.LUMA_MAX_VIDEO_BYTES = 1 * MB
    video = SimpleUploadedFile("big.mp4", b"\0" * int(1.4 * MB), content_type="video/mp4")
    response = bad_post(signed_in, {"video": video, "prompt": "a snowy night"})
    error = field_errors(response.content.decode(), "video")
    shown, limit = map(float, re.search(r"is ([\d.]+) MB; the limit is ([\d.]+) MB", error).groups())
    assert shown > limit


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://example.com/clip.mp4", "The video URL must start with http:// or https://."),
        ("not a url", "Enter a valid URL."),
    ],
)
def test_a_bad_url_is_refused(signed_in, url, message):
    response = bad_post(signed_in, {"video_url": url, "prompt": "a snowy night"})
    assert field_errors(response.content.decode(), "video_url") == message


@pytest.mark.parametrize("prompt", ["", "   \n  "])
def test_an_empty_prompt_is_refused(signed_in, prompt):
    response = bad_post(signed_in, {"video_url": "https://example.com/clip.mp4", "prompt": prompt})
    assert field_errors(response.content.decode(), "prompt") == "Write a prompt that describes the change."


@pytest.mark.parametrize(
    "prompt",
    [
        "Сделай так, чтобы шёл снег",
        "让它看起来像冬天的夜晚",
        "la vidéo en hiver avec neige sur les toits, très belle",
        "haz que parezca una noche de invierno con nieve",
        "mach es zu einer Winternacht mit Schnee und Nebel",
        "Haz que el video parezca una noche de invierno, a medianoche",
        "Mache das Video in eine Winternacht mit Schnee",
    ],
)
def test_a_prompt_not_in_english_is_refused(signed_in, prompt):
    response = bad_post(signed_in, {"video_url": "https://example.com/clip.mp4", "prompt": prompt})
    page = response.content.decode()
    assert field_errors(page, "prompt") == "The prompt must be in English: the provider only understands English prompts."
    assert prompt in page  # what the user typed is kept for them to fix


@pytest.mark.parametrize(
    "prompt",
    [
        "a winter night in a Paris café",
        "make it look like la dolce vita",
        "neon city",
        "film noir, rain, el camino at dusk",
        "Las Vegas strip, Los Angeles skyline, neon",
        "Del Mar beach, El Capitan sunrise",
        "film noir, très chic, la belle époque",
        "a drive from Los Angeles to Las Vegas and El Paso at night",
    ],
)
def test_english_with_borrowed_words_is_accepted(prompt):
    from modify.prompts import prompt_problem

    assert prompt_problem(prompt) is None


def test_a_file_and_a_url_together_are_refused(signed_in, clip):
    response = bad_post(
        signed_in, {"video": upload(clip()), "video_url": "https://example.com/clip.mp4", "prompt": "a snowy night"}
    )
    assert form_errors(response.content.decode()) == "Give either a video file or a URL, not both."


def test_neither_file_nor_url_is_refused(signed_in):
    response = bad_post(signed_in, {"prompt": "a snowy night"})
    assert form_errors(response.content.decode()) == "Choose a video file or give a video URL."


def test_without_htmx_errors_come_back_as_the_whole_page_with_422(signed_in, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = bad_post(signed_in, {"video_url": "ftp://example.com/a.mp4", "prompt": "a snowy night"})
    assert response.status_code == 422
    page = response.content.decode()
    assert page.lstrip().startswith("<!doctype html>")
    assert "My tasks" in page
    assert "The video URL must start with http:// or https://." in page
    assert callbacks == [] and sent == []


def test_with_htmx_errors_come_back_as_the_form_fragment_with_200(signed_in):
    response = bad_post(signed_in, {"video_url": "ftp://example.com/a.mp4", "prompt": "a snowy night"}, htmx=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<form id="task-form"')
    assert "<html" not in page and "My tasks" not in page
    assert field_errors(page, "video_url") == "The video URL must start with http:// or https://."
    assert "a snowy night" in page


# --- Remix ---------------------------------------------------------------------------------------------


def test_a_remix_with_only_a_prompt_uses_the_result_as_its_source(signed_in, member, other, clip):
    original = succeeded_task(other, clip(seconds=2))
    response = signed_in.post("/tasks/", {"remix_of": str(original.pk), "prompt": "now make it summer"})
    assert response.status_code == 302, response.content.decode()[:2000]
    task = ModifyTask.objects.exclude(pk=original.pk).get()
    assert task.owner == member
    assert task.remix_of == original
    assert task.state == ModifyTask.State.QUEUED
    assert task.source_kind == ModifyTask.Source.UPLOAD
    assert task.source_duration == original.result_duration
    assert task.source_file.name != original.result_file.name  # a copy, not the same file
    with task.source_file.open("rb") as copy, original.result_file.open("rb") as result:
        assert copy.read() == result.read()
    assert task.events.get().detail == f"remix of task {original.pk}"


def test_a_remix_whose_result_left_the_archive_says_so(signed_in, member, clip):
    original = succeeded_task(member, clip())
    original.result_file.storage.delete(original.result_file.name)
    response = signed_in.post("/tasks/", {"remix_of": str(original.pk), "prompt": "now make it summer"})
    assert response.status_code == 422
    assert form_errors(response.content.decode()).startswith("The result to remix is no longer in the archive")
    assert ModifyTask.objects.count() == 1


def test_a_remix_of_someone_elses_unshared_task_is_refused(signed_in, other, clip):
    private = succeeded_task(other, clip(), shared=False)
    response = signed_in.post("/tasks/", {"remix_of": str(private.pk), "prompt": "now make it summer"})
    assert response.status_code == 422
    assert form_errors(response.content.decode()) == "Choose a video file or give a video URL."
    assert ModifyTask.objects.count() == 1


def test_a_remix_of_an_unfinished_task_is_refused(signed_in, member):
    running = make_task(member, ModifyTask.State.GENERATING)
    response = signed_in.post("/tasks/", {"remix_of": str(running.pk), "prompt": "now make it summer"})
    assert response.status_code == 422
    assert ModifyTask.objects.count() == 1


def test_a_garbled_remix_id_is_ignored_not_a_server_error(signed_in):
    response = signed_in.post("/tasks/", {"remix_of": "not-a-uuid", "prompt": "now make it summer"})
    assert response.status_code == 422
    assert form_errors(response.content.decode()) == "Choose a video file or give a video URL."
