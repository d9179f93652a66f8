"""Issue 8's team flow in a real browser, end to end.

Staff (sam) sign in and invite a member; the invitation link is shown once, copied, and opened in
the member's own browser context; the member joins and lands in the studio, adds a personal key
(checked against the sandbox over real HTTP: a wrong one is refused first), submits a video that a
real django-q2 cluster sends with that key, and sees it spent. A second task fails for real (an
injected generation failure); staff open its page and retry it; the audit list and the stats show
what happened. Every page of the flow is photographed at 1280 and 375 px (under the test's tmp_path)
and must not scroll sideways on a phone.
"""

import re
import time

import pytest
from playwright.sync_api import expect

from modify.models import ApiKey, ModifyTask, TaskEvent
from modify.states import Actor
from team.models import AuditEvent, Invitation
from team.roles import make_staff
from tests.conftest import SANDBOX_KEY, wait_for, wait_for_state
from tests.factories import make_member

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

STAFF_PASSWORD = "pw-staff-sam-4821"
MEMBER_PASSWORD = "nina-picks-a-long-one-93"
KEY_LABEL = "My kie.ai key"
WRONG_KEY = "kie-not-a-real-key-0000"
MASKED = "••••" + SANDBOX_KEY[-4:]  # ••••-key
SUCCEEDED_TIMEOUT_MS = 90_000
WIDTHS = (1280, 375)

# The elements wider than the viewport, to say what scrolls sideways when something does.
OVERFLOWING = """(width) => Array.from(document.querySelectorAll("body *"))
  .filter((el) => el.getBoundingClientRect().right > width + 0.5)
  .slice(0, 5)
  .map((el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className ? "." + String(el.className).trim().split(/\\s+/).join(".") : ""} right=${Math.round(el.getBoundingClientRect().right)}`)"""


def open_context(browser, e2e, **options):
    """A fresh browser context (its own cookies); page errors and failed same-origin requests are recorded."""
    context = browser.new_context(base_url=e2e.url, viewport={"width": 1280, "height": 900}, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.on(
        "response",
        lambda response: response.status >= 400
        and response.url.startswith(e2e.url)
        and page.problems.append(f"HTTP {response.status} {response.request.method} {response.url}"),
    )
    return context, page


class Camera:
    """Full-page screenshots at each width, and whether the page scrolls sideways at 375 px."""

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.sideways = []

    def shoot(self, page, name):
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_timeout(150)  # relayout
            page.screenshot(path=str(self.folder / f"{name}-{width}.png"), full_page=True)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width:
                self.sideways.append(f"{name} at {width} px: scrollWidth {scroll_width}, "
                                     f"{page.evaluate(OVERFLOWING, width)}")
        page.set_viewport_size({"width": 1280, "height": 900})


def no_secret_in(page):
    html = page.content()
    assert SANDBOX_KEY not in html, f"the key's secret is in the HTML of {page.url}"
    assert WRONG_KEY not in html, f"the refused key is in the HTML of {page.url}"


def wait_for_htmx(page):
    page.wait_for_function("() => window.htmx !== undefined")


def test_staff_invite_a_member_who_spends_their_own_key_and_staff_oversee_it(
    e2e, browser, clip, inject_faults, settings, tmp_path
):
    started = time.monotonic()
    camera = Camera(tmp_path / "screenshots")
    sam = make_staff(make_member("sam", password=STAFF_PASSWORD))

    staff_context, staff = open_context(browser, e2e)
    staff_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=e2e.url)
    member_context = None
    try:
        # --- Staff sign in through the real form and invite nina -------------------------------------
        staff.goto("/accounts/login/")
        staff.get_by_label("Username").fill("sam")
        staff.get_by_label("Password").fill(STAFF_PASSWORD)
        staff.get_by_role("button", name="Sign in").click()
        expect(staff).to_have_url(f"{e2e.url}/")
        expect(staff.locator("header .who")).to_have_text("sam")

        staff.locator("header nav").get_by_role("link", name="Team").click()
        expect(staff).to_have_url(f"{e2e.url}/team/invitations/")
        staff.get_by_label("Email").fill("nina@example.com")
        staff.get_by_role("button", name="Invite").click()
        ready = staff.locator("#new-invitation")
        expect(ready).to_contain_text("Invitation ready for nina@example.com")
        expect(ready).to_contain_text("Copy the link now: this is the only time it is shown.")
        expect(ready).to_contain_text("The link was emailed to nina@example.com.")
        link_field = staff.get_by_label("Invitation link")
        link = link_field.input_value()
        assert link.startswith(f"{e2e.url}/join/") and len(link) > len(f"{e2e.url}/join/") + 20, link
        # The Copy button (shown only with JavaScript) puts the link on the clipboard and says so.
        copy = ready.get_by_role("button", name="Copy")
        expect(copy).to_be_visible()
        copy.click()
        expect(ready.get_by_role("button", name="Copied")).to_be_visible()
        expect(staff.locator("#invitation-link-status")).to_have_text("Link copied to the clipboard.")
        copied = staff.evaluate("() => navigator.clipboard.readText()")
        assert copied == link
        camera.shoot(staff, "invitations")
        invitation = Invitation.objects.get()
        assert invitation.email == "nina@example.com" and invitation.created_by == sam and invitation.is_open

        # Shown once: the invitations page, loaded again, lists it without its link.
        staff.goto("/team/invitations/")
        expect(staff.locator("#new-invitation")).to_have_count(0)
        row = staff.locator(f"#invitation-{invitation.pk}")
        expect(row).to_have_attribute("data-state", "open")
        expect(row).to_contain_text("nina@example.com")
        token = copied.rstrip("/").rsplit("/", 1)[1]
        assert token not in staff.content()

        # --- The member opens the copied link in their own browser and joins -------------------------
        member_context, member = open_context(browser, e2e)
        member.goto(copied)
        expect(member.get_by_role("heading", name="Join lumaweb")).to_be_visible()
        expect(member.locator("section.join")).to_contain_text("sam invited you.")
        camera.shoot(member, "join")
        member.get_by_label("Username").fill("nina")
        member.get_by_label("Password", exact=True).fill(MEMBER_PASSWORD)
        member.get_by_label("Password confirmation").fill(MEMBER_PASSWORD)
        member.get_by_role("button", name="Create my account").click()
        expect(member).to_have_url(f"{e2e.url}/")
        expect(member.locator(".flash")).to_have_text("Welcome to lumaweb, nina. Your account is ready.")
        expect(member.locator("header .who")).to_have_text("nina")
        expect(member.get_by_role("heading", name="New video")).to_be_visible()
        expect(member.locator("#no-tasks")).to_be_visible()
        expect(member.locator("header nav").get_by_role("link", name="Team")).to_have_count(0)  # not staff
        camera.shoot(member, "studio-welcome")
        nina = Invitation.objects.get(pk=invitation.pk).accepted_by
        assert nina is not None and nina.username == "nina" and not nina.is_staff

        # --- The member adds a personal key: a wrong one is refused, the sandbox's is kept -------------
        member.locator("header nav").get_by_role("link", name="Keys").click()
        expect(member).to_have_url(f"{e2e.url}/keys/")
        wait_for_htmx(member)
        mine = member.locator("#personal-keys")
        expect(mine).to_contain_text("You have no key of your own")
        mine.get_by_label("Label").fill(KEY_LABEL)
        mine.get_by_label("API key").fill(WRONG_KEY)
        mine.get_by_role("button", name="Check and add my key").click()
        refusal = member.locator("#personal-keys .error[role=alert]")
        expect(refusal).to_have_text("kie.ai refused this key: check it was copied whole.")
        expect(member.locator("#personal-keys").get_by_label("Label")).to_have_value(KEY_LABEL)  # kept
        expect(member.locator("#personal-keys").get_by_label("API key")).to_have_value("")  # never sent back
        assert not ApiKey.objects.exists()
        no_secret_in(member)
        camera.shoot(member, "keys-refused")

        member.locator("#personal-keys").get_by_label("API key").fill(SANDBOX_KEY)
        with member.expect_response(lambda r: r.request.method == "POST" and r.url == f"{e2e.url}/keys/") as added:
            member.locator("#personal-keys").get_by_role("button", name="Check and add my key").click()
        assert SANDBOX_KEY not in added.value.text()
        expect(member.locator("#personal-keys [role=status]")).to_have_text(
            f"Key “{KEY_LABEL}” ({MASKED}) added: kie.ai counts 1000 credits on it.")
        key = ApiKey.objects.get()
        assert (key.owner, key.created_by, key.label, key.last4) == (nina, nina, KEY_LABEL, SANDBOX_KEY[-4:])
        card = member.locator(f"#key-{key.pk}")
        expect(card).to_contain_text(KEY_LABEL)
        expect(card.locator("code")).to_have_text(MASKED)
        expect(card).to_contain_text("1000 credits left")
        expect(card).to_contain_text("No task has spent it yet")
        member.reload()  # as the page stands, not only as htmx swapped it in
        expect(member.locator(f"#key-{key.pk} code")).to_have_text(MASKED)
        no_secret_in(member)
        camera.shoot(member, "keys")

        # --- The member submits a video; the cluster sends it with the member's key -----------------
        member.locator("header nav").get_by_role("link", name="Studio").click()
        expect(member).to_have_url(f"{e2e.url}/")
        wait_for_htmx(member)
        assert member.locator("#id_key").count() == 0  # one key open to nina: nothing to choose
        member.locator("#id_video").set_input_files(str(clip(seconds=1.5)))
        member.get_by_label("Prompt").fill("a snowy winter night")
        member.get_by_role("button", name="Create video").click()
        expect(member.locator("#task-list article.card")).to_have_count(1)
        first = ModifyTask.objects.get(owner=nina)
        first_card = member.locator(f"#task-{first.pk}")
        expect(first_card).to_contain_text("a snowy winter night")
        expect(first_card).to_have_attribute("data-state", "succeeded", timeout=SUCCEEDED_TIMEOUT_MS)
        expect(first_card.locator(".phase")).to_have_text("Done")
        first.refresh_from_db()
        assert first.api_key == key, "the task did not spend the member's own key"
        assert first.credits is not None  # charged by the provider (the sandbox) on that key
        camera.shoot(member, "studio")
        no_secret_in(member)
        # What a member can see of which key a task spent: the count on their key's card. (Neither the
        # task's card nor its page names the key to its owner; only staff see "spends …" on the page.)
        member.goto("/keys/")
        expect(member.locator(f"#key-{key.pk}")).to_contain_text("1 task spent it")

        # --- A second task fails for real (the sandbox's generation fails) -----------------------------
        inject_faults("generation_fail")
        member.goto("/")
        wait_for_htmx(member)
        member.locator("#id_video").set_input_files(str(clip(seconds=1)))
        member.get_by_label("Prompt").fill("make it neon")
        member.get_by_role("button", name="Create video").click()
        expect(member.locator("#task-list article.card")).to_have_count(2)
        failed = ModifyTask.objects.filter(owner=nina).latest("created_at")
        failed_card = member.locator(f"#task-{failed.pk}")
        expect(failed_card).to_have_attribute("data-state", "failed", timeout=SUCCEEDED_TIMEOUT_MS)
        expect(failed_card.locator(".error")).to_contain_text("could not generate this video")
        failed.refresh_from_db()
        assert failed.api_key == key and failed.state == ModifyTask.State.FAILED
        settings.SANDBOX_FAULTS = ""  # the retry may succeed

        # --- Staff open the failed task's page and retry it ------------------------------------------
        staff.goto(f"/tasks/{failed.pk}/")
        detail = staff.locator("#task-detail")
        expect(detail).to_have_attribute("data-state", "failed")
        expect(detail.locator(".error[role=alert]")).to_contain_text("could not generate this video")
        expect(staff.locator("#staff")).to_contain_text(f"spends {KEY_LABEL}")
        staff.locator("#staff").get_by_role("button", name="Retry", exact=True).click()
        expect(staff).to_have_url(f"{e2e.url}/tasks/{failed.pk}/")
        again = wait_for(lambda: ModifyTask.objects.filter(owner=nina).exclude(pk__in=[first.pk, failed.pk]).first(),
                         timeout=10, what="the retry")
        expect(staff.locator(".flash")).to_have_text(f"Sent again as a new task of nina (task {again.pk}).")
        expect(staff.locator("ol.timeline")).to_contain_text(f"Tried again as a new task (by staff, sam): as task {again.pk}")
        expect(staff.locator("#staff").get_by_role("link", name="See the new attempt")).to_have_attribute(
            "href", f"/tasks/{again.pk}/")
        expect(staff.locator("#staff").get_by_role("button", name="Retry", exact=True)).to_have_count(0)  # once
        camera.shoot(staff, "task-retried")
        retried = TaskEvent.objects.get(task=failed, kind="retried")
        assert (retried.actor, retried.actor_user) == (Actor.STAFF, sam)
        created = again.events.get(kind="created")
        assert (created.actor, created.actor_user, created.detail) == (Actor.STAFF, sam, f"retry of task {failed.pk}")
        assert again.prompt == "make it neon"
        wait_for_state(again, ModifyTask.State.SUCCEEDED, timeout=90)
        assert again.api_key == key  # the retry spends nina's key too

        # The member sees the new attempt in their studio.
        member.goto("/")
        expect(member.locator("#task-list article.card")).to_have_count(3)
        expect(member.locator(f"#task-{again.pk}")).to_have_attribute("data-state", "succeeded")
        expect(member.locator(f"#task-{failed.pk}").get_by_role("link", name="See the new attempt")).to_be_visible()
        camera.shoot(member, "studio-three-tasks")

        # --- Staff see it all in the audit list -------------------------------------------------------
        staff.locator("header nav").get_by_role("link", name="Audit").click()
        expect(staff).to_have_url(f"{e2e.url}/team/audit/")
        wait_for_htmx(staff)
        staff.get_by_label("Member").fill("nina")
        staff.get_by_role("button", name="Filter").click()
        expect(staff).to_have_url(re.compile(r"/team/audit/\?member=nina(&|$)"))
        rows = staff.locator("#audit-table tbody tr")
        key_added = rows.and_(staff.locator("[data-kind=key_added]"))
        expect(key_added).to_have_count(1)
        expect(key_added).to_contain_text("Member · nina")
        expect(key_added).to_contain_text(f"Key {KEY_LABEL}")
        assert SANDBOX_KEY not in staff.content()
        created_rows = rows.and_(staff.locator("[data-kind=created]"))
        expect(created_rows).to_have_count(3)  # nina's two submissions and staff's retry
        expect(created_rows.filter(has_text="Member · nina")).to_have_count(2)
        expect(created_rows.filter(has_text="Staff · sam")).to_have_count(1)
        retried_row = rows.and_(staff.locator("[data-kind=retried]"))
        expect(retried_row).to_have_count(1)
        expect(retried_row).to_contain_text("Staff · sam")
        expect(retried_row).to_contain_text(f"as task {again.pk}")
        expect(rows.and_(staff.locator("[data-kind=invitation_accepted]"))).to_have_count(1)
        camera.shoot(staff, "audit")
        assert AuditEvent.objects.filter(kind="key_added", api_key=key, actor_user=nina).count() == 1

        # --- ... and in the stats --------------------------------------------------------------------
        staff.locator("header nav").get_by_role("link", name="Stats").click()
        expect(staff).to_have_url(f"{e2e.url}/team/stats/")
        total = staff.locator("#day-total td")
        expect(total).to_have_text(["2", "1", "0", "3"])  # succeeded, failed, in flight, total
        expect(staff.locator("#success-rate-row")).to_contain_text("66.7")
        member_row = staff.locator("#members tbody tr").filter(has_text="nina")
        expect(member_row).to_have_count(1)
        charged = ModifyTask.objects.filter(owner=nina, credits__isnull=False)
        expect(member_row.locator("td").first).to_have_text(str(charged.count()))
        key_row = staff.locator("#keys tbody tr").filter(has_text=f"{KEY_LABEL} ({MASKED}) (nina)")
        expect(key_row).to_have_count(1)
        expect(staff.locator("#reasons")).to_contain_text("could not generate this video")
        camera.shoot(staff, "stats")
        assert SANDBOX_KEY not in staff.content()

        assert staff.problems == [] and member.problems == [], (staff.problems, member.problems)
        assert camera.sideways == [], "pages scroll sideways:\n" + "\n".join(camera.sideways)
        print(f"\nscreenshots: {camera.folder} ({time.monotonic() - started:.0f} s)")
    finally:
        if member_context is not None:
            member_context.close()
        staff_context.close()
