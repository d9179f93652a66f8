import pytest
from tests.factories import make_task
from modify.models import ModifyTask
@pytest.mark.django_db
def test_peek(admin_client, member):
    task = make_task(member, "failed", failed_stage="generating")
    page = admin_client.get(f"/admin/modify/modifytask/{task.pk}/change/").content.decode()
    i = page.index('id="events-group"')
    print(page[i:i+6000])
