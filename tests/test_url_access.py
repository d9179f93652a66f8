"""Every URL the app answers, tried anonymously, as a member and as staff.

``RULES`` is the table of who may open what; a URL pattern no rule covers
fails the test, so a new page cannot ship without deciding who sees it.
Answers: a status code; LOGIN (sent to the sign-in page); ADMIN_LOGIN (sent
to the admin's); ADMIN (staff get in: any answer but a sign-in redirect or a
server error); API (the sandbox's bearer-key API: the same answer whoever is
signed in, never a sign-in redirect).
"""

import re

import pytest
from django.urls import URLResolver, get_resolver

from modify.models import ModifyTask
from team.models import Invitation
from team.roles import make_staff
from tests.factories import make_key, make_member, make_task

LOGIN, ADMIN_LOGIN, ADMIN, API = "login", "admin-login", "admin", "api"
HEALTH = "health"  # 200, or 503 where no q cluster runs beside the test
ROLES = ("anonymous", "member", "staff")

# (pattern regex, method, {role: answer}); the first rule whose regex matches the pattern applies.
RULES = [
    (r"^accounts/login/$", "GET", {"anonymous": 200, "member": 200, "staff": 200}),
    (r"^accounts/logout/$", "GET", {"anonymous": 405, "member": 405, "staff": 405}),
    (r"^$", "GET", {"anonymous": LOGIN, "member": 200, "staff": 200}),
    (r"^tasks/$", "GET", {"anonymous": LOGIN, "member": 405, "staff": 405}),
    (r"^tasks/<uuid:pk>/$", "GET", {"anonymous": LOGIN, "member": 200, "staff": 200}),
    # The live card is its owner's (staff watch the task's page instead).
    (r"^tasks/<uuid:pk>/status/$", "GET", {"anonymous": LOGIN, "member": 200, "staff": 404}),
    # The studio's poll for its cards (htmx only): a plain visit is sent to the studio.
    (r"^tasks/live/$", "GET", {"anonymous": LOGIN, "member": 302, "staff": 302}),
    (r"^tasks/<uuid:pk>/(share|retry)/$", "GET", {"anonymous": LOGIN, "member": 405, "staff": 405}),
    (r"^tasks/<uuid:pk>/staff/<slug:action>/$", "GET", {"anonymous": LOGIN, "member": 403, "staff": 405}),
    (r"^gallery/$", "GET", {"anonymous": LOGIN, "member": 200, "staff": 200}),
    (r"^media/<path:path>$", "GET", {"anonymous": LOGIN, "member": 200, "staff": 200}),
    (r"^callbacks/<str:token>/$", "GET", {"anonymous": 405, "member": 405, "staff": 405}),
    (r"^healthz$", "GET", {"anonymous": HEALTH, "member": HEALTH, "staff": HEALTH}),
    (r"^livez$", "GET", {"anonymous": 200, "member": 200, "staff": 200}),
    # An open invitation: its form to the anonymous invitee; a signed-in user is asked to sign out first.
    (r"^join/<str:token>/$", "GET", {"anonymous": 200, "member": 200, "staff": 200}),
    (r"^profile/(password/)?$", "GET", {"anonymous": LOGIN, "member": 200, "staff": 200}),
    (r"^keys/$", "GET", {"anonymous": LOGIN, "member": 200, "staff": 200}),
    (r"^keys/<int:pk>/revoke/$", "GET", {"anonymous": LOGIN, "member": 405, "staff": 405}),
    (r"^team/invitations/$", "GET", {"anonymous": LOGIN, "member": 403, "staff": 200}),
    (r"^team/invitations/<int:pk>/revoke/$", "GET", {"anonymous": LOGIN, "member": 403, "staff": 405}),
    (r"^team/(audit/|audit\.csv|stats/|stats\.csv)$", "GET", {"anonymous": LOGIN, "member": 403, "staff": 200}),
    (r"^sandbox/", "GET", {"anonymous": API, "member": API, "staff": API}),
    (r"^admin/login/$", "GET", {"anonymous": 200, "member": 200, "staff": ADMIN}),
    # Not staff: the admin sends them to its home (and so to its sign-in); staff must POST.
    (r"^admin/logout/$", "GET", {"anonymous": 302, "member": 302, "staff": 405}),
    (r"^admin/", "GET", {"anonymous": ADMIN_LOGIN, "member": ADMIN_LOGIN, "staff": ADMIN}),
]


def patterns(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from patterns(entry, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern)


def rule_for(pattern):
    return next(((method, answers) for regex, method, answers in RULES if re.search(regex, pattern)), None)


def test_every_url_has_a_rule():
    assert [pattern for pattern in patterns() if rule_for(pattern) is None] == []


@pytest.fixture
def world(db, member):
    """One of everything a URL can name, as the member's: a private result, a key, an open invitation."""
    staff = make_staff(make_member("sam"))
    task = make_task(member, ModifyTask.State.SUCCEEDED, shared=False)
    key = make_key("Maria's key", owner=member)
    invitation, token = Invitation.make(staff, email="new@example.com")
    values = {
        "uuid:pk": str(task.pk), "slug:action": "stop", "path:path": task.result_file.name,
        "str:token": token, "int:pk": str(key.pk), "str:kind": "uploads", "path:name": "nothing.mp4",
        "path:object_id": str(task.pk), "app_label": "modify", "path:content_type_id": "1", "url": "nothing",
        "id": str(member.pk),
    }
    return {"staff": staff, "member": member, "task": task, "invitation": invitation, "values": values}


def concrete(pattern, world):
    """The pattern with each converter filled in from ``world``."""
    values = dict(world["values"])
    if pattern.startswith("team/invitations/"):
        values["int:pk"] = str(world["invitation"].pk)
    if pattern.startswith("callbacks/"):
        values["str:token"] = world["task"].callback_token
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda match: values[match.group(1)], pattern)  # the admin's regex routes
    url = re.sub(r"<([^>]+)>", lambda match: values[match.group(1)], url)
    return "/" + url.replace("^", "").replace("$", "").replace("\\", "")


def answer_of(response):
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith("/admin/login/"):
            return ADMIN_LOGIN
        if location.startswith("/accounts/login/"):
            return LOGIN
    return response.status_code


@pytest.mark.parametrize("role", ROLES)
def test_each_url_answers_as_the_role_allows(client, world, role):
    if role != "anonymous":
        client.force_login(world[role])
    wrong, sandbox_answers = [], {}
    for pattern in patterns():
        method, answers = rule_for(pattern)
        url = concrete(pattern, world)
        response = getattr(client, method.lower())(url)
        got, expected = answer_of(response), answers[role]
        if expected == ADMIN:
            ok = got not in (LOGIN, ADMIN_LOGIN) and not (isinstance(got, int) and got >= 500)
        elif expected == HEALTH:
            ok = got in (200, 503)
        elif expected == API:
            ok = got not in (LOGIN, ADMIN_LOGIN) and got < 500
            sandbox_answers[pattern] = got
        else:
            ok = got == expected
        if not ok:
            wrong.append((pattern, url, got, expected))
    assert wrong == []


def test_the_sandbox_answers_the_same_whoever_is_signed_in(client, world):
    """Its API is for bearer keys: a browser session changes nothing about what it says."""
    answers = {}
    for role in ROLES:
        if role != "anonymous":
            client.force_login(world[role])
        answers[role] = [answer_of(client.get(concrete(p, world))) for p in patterns() if p.startswith("sandbox/")]
    assert answers["anonymous"] == answers["member"] == answers["staff"]


def test_another_member_reaches_nothing_private_of_a_member(client, world, other):
    """Ivan, signed in, knows every address of Maria's private result and key: each is a 404."""
    task, key_pk = world["task"], world["values"]["int:pk"]
    client.force_login(other)
    gets = [f"/tasks/{task.pk}/", f"/tasks/{task.pk}/status/", f"/media/{task.result_file.name}",
            f"/media/{task.poster.name}"]
    posts = [f"/tasks/{task.pk}/share/", f"/tasks/{task.pk}/retry/", f"/keys/{key_pk}/revoke/"]
    answers = [client.get(url).status_code for url in gets] + [client.post(url).status_code for url in posts]
    assert answers == [404] * len(answers)
    keys_page = client.get("/keys/").content.decode()
    profile = client.get("/profile/").content.decode()
    assert "Maria's key" not in keys_page and "maria" not in profile.lower()
