"""GET /gallery/: every member's finished, shared results, newest first, 24 a page."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from modify.models import ModifyTask
from tests.factories import backdate, make_task

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from tests.clips import make_clip

    return make_clip(tmp_path_factory.mktemp("gallery") / "clip.mp4", seconds=1)


@pytest.fixture
def finished(video):
    """``finished(owner, prompt, minutes_ago, ...)``: a task that ended ``minutes_ago`` (a result, with a poster frame)."""
    now = timezone.now()

    def make(owner, prompt, minutes_ago=0, state=ModifyTask.State.SUCCEEDED, shared=True):
        task = make_task(owner, state, prompt=prompt, shared=shared, created_at=now - timedelta(minutes=minutes_ago + 5),
                         result=video if state == ModifyTask.State.SUCCEEDED else None)
        if task.is_terminal:
            backdate(task, finished_at=now - timedelta(minutes=minutes_ago))
        return task

    return make


def tiles(page):
    """The tile ids in page order."""
    return re.findall(r'<a class="tile" href="/tasks/[^"]+/" id="tile-([^"]+)">', page)


def get(client, url="/gallery/"):
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_only_finished_shared_results_of_all_members_appear_newest_first(signed_in, member, other, finished):
    older_mine = finished(member, "mine, an hour ago", minutes_ago=60)
    newest_theirs = finished(other, "theirs, just now", minutes_ago=1)
    middle_theirs = finished(other, "theirs, ten minutes ago", minutes_ago=10)
    finished(member, "mine but hidden", minutes_ago=2, shared=False)
    finished(other, "theirs but failed", minutes_ago=3, state=ModifyTask.State.FAILED)
    finished(other, "theirs still generating", minutes_ago=4, state=ModifyTask.State.GENERATING)
    page = get(signed_in)
    assert tiles(page) == [str(t.pk) for t in (newest_theirs, middle_theirs, older_mine)]
    for hidden in ("mine but hidden", "theirs but failed", "theirs still generating"):
        assert hidden not in page
    assert "ivan ·" in page and "maria ·" in page


def test_tiles_show_the_poster_and_link_to_the_task(signed_in, other, finished):
    task = finished(other, "a snowy winter night")
    page = get(signed_in)
    assert f'<a class="tile" href="/tasks/{task.pk}/" id="tile-{task.pk}">' in page
    assert f'<img src="{task.poster.url}" alt="Poster frame: a snowy winter night" loading="lazy">' in page
    poster = signed_in.get(task.poster.url)
    assert poster.status_code == 200 and poster["Content-Type"] == "image/jpeg"
    assert b"".join(poster.streaming_content)[:3] == b"\xff\xd8\xff"


def test_pages_of_24_with_older_and_newer_links(signed_in, member, finished):
    tasks = [finished(member, f"result number {n}", minutes_ago=n) for n in range(26)]  # tasks[0] is newest
    first = get(signed_in)
    assert tiles(first) == [str(t.pk) for t in tasks[:24]]
    assert "Page 1 of 2" in first
    assert "Newer" not in first
    older = re.search(r'<a href="([^"]+)">Older →</a>', first).group(1)

    second = get(signed_in, "/gallery/" + older)
    assert tiles(second) == [str(t.pk) for t in tasks[24:]]
    assert "Page 2 of 2" in second
    assert "Older" not in second
    newer = re.search(r'<a href="([^"]+)">← Newer</a>', second).group(1)
    assert tiles(get(signed_in, "/gallery/" + newer)) == tiles(first)


def test_a_page_number_out_of_range_shows_the_last_page(signed_in, member, finished):
    tasks = [finished(member, f"result number {n}", minutes_ago=n) for n in range(25)]
    assert tiles(get(signed_in, "/gallery/?page=99")) == [str(tasks[24].pk)]
    assert len(tiles(get(signed_in, "/gallery/?page=oops"))) == 24


def test_a_full_page_costs_a_fixed_number_of_queries(signed_in, member, other, finished, django_assert_max_num_queries):
    for n in range(24):
        finished(member if n % 2 else other, f"result number {n}", minutes_ago=n)
    with django_assert_max_num_queries(5):
        assert len(tiles(get(signed_in))) == 24


def test_an_empty_gallery_says_so(signed_in, member, finished):
    finished(member, "hidden", shared=False)
    page = get(signed_in)
    assert "Nothing shared yet. Finished videos appear here for the whole team." in page
    assert tiles(page) == []


def test_anonymous_is_sent_to_sign_in(client, other, finished):
    finished(other, "a snowy winter night")
    response = client.get("/gallery/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/gallery/"
    assert "a snowy winter night" not in response.content.decode()
