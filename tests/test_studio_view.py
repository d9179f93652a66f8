"""GET /: the studio, with the form and my own tasks, newest first, a page at a time."""

import pytest

from modify.models import ModifyTask
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/"


def test_shows_the_form_and_only_my_tasks(signed_in, member, other):
    mine = make_task(member, prompt="my snowy night")
    make_task(other, prompt="their sunset")
    page = signed_in.get("/").content.decode()
    assert 'id="task-form"' in page
    assert '<form id="task-form" method="post" action="/tasks/"' in page  # posts to "task-create"
    assert f'id="task-{mine.pk}"' in page and "their sunset" not in page


def test_older_tasks_are_a_page_away(signed_in, member):
    tasks = [make_task(member, prompt=f"task {i}") for i in range(31)]
    first = signed_in.get("/").content.decode()
    assert f'id="task-{tasks[-1].pk}"' in first and f'id="task-{tasks[0].pk}"' not in first
    assert 'href="?page=2"' in first
    second = signed_in.get("/?page=2").content.decode()
    assert f'id="task-{tasks[0].pk}"' in second and 'href="?page=1"' in second


def test_an_empty_studio_says_what_will_appear(signed_in):
    assert "No tasks yet" in signed_in.get("/").content.decode()


@pytest.mark.parametrize("remix", ["unshared", "running", "not-a-uuid"])
def test_a_remix_link_that_cannot_be_used_says_why(signed_in, member, other, remix):
    tasks = {
        "unshared": lambda: make_task(other, ModifyTask.State.SUCCEEDED, shared=False),
        "running": lambda: make_task(member, ModifyTask.State.GENERATING),
    }
    remix_id = tasks[remix]().pk if remix in tasks else remix
    page = signed_in.get(f"/?remix={remix_id}").content.decode()
    assert "That result cannot be remixed" in page
    assert 'name="remix_of"' not in page
    assert "That result cannot be remixed" not in signed_in.get("/").content.decode()


def test_a_usable_remix_link_prefills_the_form(signed_in, other):
    shared = make_task(other, ModifyTask.State.SUCCEEDED, prompt="a shared winter night", shared=True)
    page = signed_in.get(f"/?remix={shared.pk}").content.decode()
    assert f'<input type="hidden" name="remix_of" value="{shared.pk}">' in page
    assert "a shared winter night" in page and "That result cannot be remixed" not in page
