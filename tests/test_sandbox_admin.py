"""The sandbox's admin never shows a task's callback URL: its path is the app's per-task secret."""

import pytest

from sandbox.models import Account, Task

pytestmark = pytest.mark.django_db
SECRET = "cb-7f3e9a0c41d24b8e"


@pytest.fixture
def task():
    return Task.objects.create(
        account=Account.for_key("sandbox-key"),
        prompt="Make it snow",
        video_url="https://example.com/a.mp4",
        callback_url=f"https://app.example.com/callback/42/{SECRET}",
        base_url="https://app.example.com/sandbox",
        source="sandbox/none.mp4",
    )


@pytest.mark.parametrize("page", ["/admin/sandbox/task/", "/admin/sandbox/task/{pk}/change/"])
def test_the_callback_secret_is_not_on_the_admin_pages(admin_client, task, page):
    response = admin_client.get(page.format(pk=task.pk))
    assert response.status_code == 200
    assert task.task_id in response.content.decode()
    assert SECRET not in response.content.decode()

