"""The "Callback deliveries" table on a task's page (templates/team/deliveries.html): for staff, each callback the
provider sent, newest first, accepted (first delivery or duplicate) or rejected with why; members never see it."""

import html
import json
import re

import pytest

from modify import webhooks
from modify.models import ModifyTask
from tests.factories import make_task

pytestmark = pytest.mark.django_db
S = ModifyTask.State
KEY = "webhook-key"
PROVIDER_ID = "d" * 32
DELIVERY = re.compile(r'<tr class="delivery delivery-(accepted|rejected)" id="delivery-\d+">(.*?)</tr>', re.S)


@pytest.fixture(autouse=True)
def signed(settings, monkeypatch):
    settings.LUMA_WEBHOOK_HMAC_KEY = KEY
    monkeypatch.setattr("modify.enqueue.poll", lambda task: None)


def deliver(client, task, headers=None, task_id=PROVIDER_ID):
    body = json.dumps({"code": 200, "msg": "ok", "data": {"taskId": task_id}})
    headers = webhooks.signed_headers(KEY, task_id) if headers is None else headers
    return client.post(f"/callbacks/{task.callback_token}/", data=body, content_type="application/json",
                       headers=headers)


def page_of(client, task):
    response = client.get(f"/tasks/{task.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def deliveries_of(page):
    """``(outcome, [cell texts])`` of each row of the deliveries table, top to bottom."""
    return [(outcome, [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
                       for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)])
            for outcome, row in DELIVERY.findall(page)]


def test_staff_see_first_delivery_duplicate_and_rejected_with_why_newest_first(client, member, staff):
    task = make_task(member, S.GENERATING, provider_task_id=PROVIDER_ID)
    assert deliver(client, task).status_code == 200
    assert deliver(client, task).status_code == 200
    forged = {"X-Webhook-Timestamp": webhooks.signed_headers(KEY, PROVIDER_ID)["X-Webhook-Timestamp"],
              "X-Webhook-Signature": "Zm9yZ2Vk"}
    assert deliver(client, task, headers=forged).status_code == 403
    assert deliver(client, task, task_id="e" * 32).status_code == 400

    client.force_login(staff)
    page = page_of(client, task)
    assert '<h2 id="callback-deliveries-title">Callback deliveries</h2>' in page
    rows = deliveries_of(page)
    assert [(outcome, cells[1:]) for outcome, cells in rows] == [
        ("rejected", ["Rejected", "TaskId does not match this task"]),
        ("rejected", ["Rejected", "Bad signature"]),
        ("accepted", ["Accepted", "Duplicate"]),
        ("accepted", ["Accepted", "First delivery"]),
    ]
    events = task.events.filter(kind__startswith="callback_").order_by("-id")
    for (_, cells), event in zip(rows, events):
        assert f'datetime="{event.created_at.isoformat()}"' in page
        assert cells[0] == f"{event.created_at:%-d %b %Y, %H:%M:%S}"
    assert "No callback accepted yet" not in page
    assert task.callback_token not in page


def test_only_rejected_deliveries_say_none_was_accepted_yet(client, member, staff):
    task = make_task(member, S.GENERATING, provider_task_id=PROVIDER_ID)
    assert deliver(client, task, headers={}).status_code == 403
    client.force_login(staff)
    page = page_of(client, task)
    rows = deliveries_of(page)
    assert [(outcome, cells[1:]) for outcome, cells in rows] == [("rejected", ["Rejected", "Missing signature headers"])]
    assert "No callback accepted yet. The provider calls back when the video is ready" in " ".join(page.split())


def test_a_task_without_callbacks_shows_no_table(client, member, staff):
    task = make_task(member, S.GENERATING, provider_task_id=PROVIDER_ID)
    task.record("poll", actor="system", detail="successFlag 0 (generating)")
    client.force_login(staff)
    page = page_of(client, task)
    assert "Callback deliveries" in page and '<table class="deliveries">' not in page
    assert "No callback accepted yet." in page


def test_members_do_not_see_deliveries_even_on_their_own_task(client, member):
    task = make_task(member, S.GENERATING, provider_task_id=PROVIDER_ID)
    assert deliver(client, task).status_code == 200
    assert deliver(client, task, headers={}).status_code == 403
    client.force_login(member)
    page = page_of(client, task)
    assert "Callback deliveries" not in page and "delivery-" not in page
    assert "Callback received" in page  # the timeline still tells its own history


@pytest.mark.browser
def test_the_deliveries_table_fits_a_phone(app, browser, client, member, staff):
    from django.test import Client

    task = make_task(member, S.GENERATING, provider_task_id=PROVIDER_ID)
    assert deliver(client, task).status_code == 200
    assert deliver(client, task, task_id="f" * 64).status_code == 400
    session = Client()
    session.force_login(staff)
    phone = browser.new_context(base_url=app.url, viewport={"width": 375, "height": 740})
    phone.add_cookies([{"name": "sessionid", "value": session.cookies["sessionid"].value, "url": app.url}])
    page = phone.new_page()
    page.goto(f"/tasks/{task.pk}/")
    section = page.locator("#callback-deliveries")
    assert section.locator("tr.delivery").count() == 2
    box = section.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    assert section.evaluate("el => el.scrollWidth <= el.clientWidth")
    phone.close()
