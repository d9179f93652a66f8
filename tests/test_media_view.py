"""GET /media/<path>: archived sources and results, for signed-in members only, with byte
ranges so that a <video> element can seek."""

import pytest
from django.conf import settings as django_settings

from modify.models import ModifyTask
from tests.factories import make_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def archived(member, clip):
    """``(url, bytes)`` of a succeeded task's archived result video."""
    video = clip(seconds=1)
    task = make_task(member, ModifyTask.State.SUCCEEDED, result=video)
    return task.result_file.url, video.read_bytes()


def body(response):
    """All the bytes; reading a streamed response to its end also closes the file."""
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_anonymous_is_sent_to_sign_in_without_the_bytes(client, archived):
    url, data = archived
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/media/results/")
    assert data[:64] not in body(response)


def test_a_full_get_returns_the_whole_file(signed_in, archived):
    url, data = archived
    response = signed_in.get(url)
    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Length"] == str(len(data))
    assert response["Cache-Control"].startswith("private")  # members-only: no shared caches
    assert body(response) == data


def test_a_byte_range_returns_exactly_those_bytes(signed_in, archived):
    url, data = archived
    response = signed_in.get(url, HTTP_RANGE="bytes=10-19")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert response["Content-Length"] == "10"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert body(response) == data[10:20]


def test_a_suffix_range_returns_the_last_bytes(signed_in, archived):
    url, data = archived
    size = len(data)
    response = signed_in.get(url, HTTP_RANGE="bytes=-5")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {size - 5}-{size - 1}/{size}"
    assert body(response) == data[-5:]


def test_an_open_range_runs_to_the_end_and_a_long_one_is_clipped(signed_in, archived):
    url, data = archived
    size = len(data)
    response = signed_in.get(url, HTTP_RANGE="bytes=100-")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-{size - 1}/{size}"
    assert body(response) == data[100:]
    response = signed_in.get(url, HTTP_RANGE=f"bytes=0-{size * 10}")
    assert response["Content-Range"] == f"bytes 0-{size - 1}/{size}"
    assert body(response) == data


@pytest.mark.parametrize("make_range", [lambda size: f"bytes={size}-", lambda size: f"bytes={size + 100}-{size + 200}"])
def test_a_range_past_the_end_is_unsatisfiable(signed_in, archived, make_range):
    url, data = archived
    response = signed_in.get(url, HTTP_RANGE=make_range(len(data)))
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"
    assert body(response) == b""


def test_a_malformed_range_gets_the_whole_file(signed_in, archived):
    url, data = archived
    response = signed_in.get(url, HTTP_RANGE="pages=1-2")
    assert response.status_code == 200
    assert body(response) == data


@pytest.fixture
def private_file():
    """A file inside MEDIA_ROOT but outside sources/ and results/."""
    path = django_settings.MEDIA_ROOT / "private.txt"
    path.write_text("not for the web")
    yield path
    path.unlink()


@pytest.mark.parametrize(
    "url",
    [
        "/media/private.txt",
        "/media/results/../private.txt",
        "/media/sources/../private.txt",
        "/media/results/%2e%2e/private.txt",
        "/media/sources/2025/../../private.txt",
        "/media/results/no/such/file.mp4",
    ],
)
def test_paths_outside_sources_and_results_are_not_found(signed_in, private_file, url):
    response = signed_in.get(url)
    assert response.status_code == 404
    assert b"not for the web" not in body(response)


def test_a_directory_is_not_found(signed_in, archived):
    url, _ = archived
    folder = url.removeprefix("/media/").rsplit("/", 1)[0]
    assert signed_in.get(f"/media/{folder}/").status_code == 404


def test_only_get_and_head_are_allowed(signed_in, archived):
    url, data = archived
    assert signed_in.post(url).status_code == 405
    head = signed_in.head(url)
    assert head.status_code == 200 and head["Content-Length"] == str(len(data))


def test_a_reversed_range_is_ignored_and_the_whole_file_sent(signed_in, archived):
    url, data = archived
    response = signed_in.get(url, HTTP_RANGE="bytes=50-10")
    assert response.status_code == 200
    assert body(response) == data


def test_files_of_a_teammates_hidden_task_are_not_served(client, archived, member, other):
    url, data = archived
    task = ModifyTask.objects.get()
    task.set_shared(False, by=member)
    client.force_login(other)
    response = client.get(url)
    assert response.status_code == 404
    assert data[:64] not in body(response)
    task.set_shared(True, by=member)
    assert client.get(url).status_code == 200
