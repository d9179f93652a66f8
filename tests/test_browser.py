"""The studio in a real browser: sign in, upload, watch htmx polling finish it, play it, find it in the gallery.

Chromium (Playwright, sync API) drives the live server while a real django-q2
cluster and the sandbox provider do the work, so everything the user sees is
produced the way it is in production: htmx swaps, the page's one status poll
that stops on HTTP 286, and media served with Range requests to a signed-in user.
"""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from modify import failures
from modify.models import ModifyTask
from tests.factories import make_task

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PASSWORD = "pw-browser-123"
SUCCEEDED_TIMEOUT_MS = 90_000
LIVE_URL = "/tasks/live/"
S = ModifyTask.State

# Plays a <video>, muted so no autoplay policy can refuse it, until the
# playhead moves (or the element reports an error); returns what it saw.
PLAY_VIDEO = """async (selector) => {
  const video = document.querySelector(selector);
  if (!video) return {missing: true};
  video.muted = true;
  let playError = null;
  try { await video.play(); } catch (error) { playError = String(error); }
  const deadline = Date.now() + 15000;
  while (!playError && !video.error && video.currentTime <= 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  video.pause();
  return {
    src: video.currentSrc, playError, error: video.error ? video.error.code : null,
    currentTime: video.currentTime, readyState: video.readyState,
    duration: video.duration, videoWidth: video.videoWidth, videoHeight: video.videoHeight,
  };
}"""

IMAGE_LOADED = "(img) => img.complete && img.naturalWidth > 0"


@pytest.fixture
def member(member):
    """The shared member (maria), with a password to sign in with."""
    member.set_password(PASSWORD)
    member.save()
    return member


@pytest.fixture
def page(e2e, browser):
    """A fresh browser context; page errors and failed same-origin requests are recorded."""
    context = browser.new_context(base_url=e2e.url, viewport={"width": 1280, "height": 900})
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
    page.media = []  # (url, status) of every /media/ response
    page.on("response", lambda r: "/media/" in r.url and page.media.append((r.url, r.status)))
    yield page
    context.close()


def sign_in(page, e2e, member):
    """The studio sends an anonymous visitor to the login form, which comes back to the studio."""
    page.goto(f"{e2e.url}/")
    expect(page).to_have_url(f"{e2e.url}/accounts/login/?next=/")
    page.get_by_label("Username").fill(member.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{e2e.url}/")
    expect(page.locator("header .who")).to_have_text(member.username)
    # htmx must be loaded and active before the form is used, or it would post normally.
    page.wait_for_function("() => window.htmx !== undefined")
    # Anything that reloads the page from now on wipes this marker; every
    # htmx request is logged beside it.
    page.evaluate(
        """() => {
            window.__noReload = 1;
            window.__htmx = [];
            document.body.addEventListener("htmx:afterRequest", (event) => window.__htmx.push(
                [event.detail.requestConfig.verb, event.detail.pathInfo.requestPath, event.detail.xhr.status]));
            // The upload progress bar, as it stood when the answer replaced the form.
            document.body.addEventListener("htmx:beforeSwap", () => {
                const bar = document.querySelector("#task-form progress.upload-progress");
                if (bar && window.__uploadProgress === undefined) window.__uploadProgress = [bar.hidden, bar.value];
            });
        }"""
    )


def wait_for_image(page, locator):
    locator.scroll_into_view_if_needed()
    page.wait_for_function(IMAGE_LOADED, arg=locator.element_handle())


def assert_served_by_the_app(page, browser, e2e, url):
    """The app's own media view served the video: byte ranges, and only to a signed-in user.

    (A live server that answers /media/ itself, as Django's does by default,
    sends 200 to anyone, ignoring Range: then none of this holds.)
    """
    assert (url, 206) in page.media, f"the <video> got no 206 for {url}: {page.media}"
    partial = page.request.get(url, headers={"Range": "bytes=0-99"})
    assert partial.status == 206, (partial.status, partial.headers)
    assert partial.headers["content-range"].startswith("bytes 0-99/")
    assert len(partial.body()) == 100
    anonymous = browser.new_context()
    try:
        refused = anonymous.request.get(url, max_redirects=0)
        assert refused.status == 302 and "/accounts/login/" in refused.headers["location"], refused.status
    finally:
        anonymous.close()


def test_upload_watch_play_and_find_in_gallery(e2e, browser, page, member, clip):
    started = time.monotonic()
    sign_in(page, e2e, member)
    expect(page.locator("#no-tasks")).to_be_visible()
    expect(page.locator("progress.upload-progress")).to_be_hidden()  # only while a video is being sent

    page.locator("#id_video").set_input_files(str(clip(seconds=1.5)))
    page.get_by_label("Prompt").fill("a snowy winter night")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url == f"{e2e.url}/tasks/") as submitted:
        page.get_by_role("button", name="Create video").click()
    assert submitted.value.request.headers.get("hx-request") == "true"
    assert submitted.value.status == 200
    assert 'data-state="queued"' in submitted.value.text()

    # The htmx response prepends the new card (out-of-band) and resets the form.
    cards = page.locator("#task-list article.card")
    expect(cards).to_have_count(1)
    expect(page.locator("#no-tasks")).to_have_count(0)
    task = ModifyTask.objects.get(owner=member)
    card = page.locator(f"#task-{task.pk}")
    expect(card).to_contain_text("a snowy winter night")
    expect(page.locator("#id_prompt")).to_have_value("")

    # The page's poll (started by the new card: nothing was in flight before) replaces the card until it is terminal.
    expect(card).to_have_attribute("data-state", "succeeded", timeout=SUCCEEDED_TIMEOUT_MS)
    expect(card.locator(".phase")).to_have_text("Done")
    expect(card.locator("input[name=since]")).to_have_count(0)  # a finished card is followed no more
    poster = card.locator("a.thumb img")
    expect(poster).to_be_visible()
    wait_for_image(page, poster)
    assert page.evaluate("window.__noReload") == 1, "the studio reloaded instead of updating in place"
    assert page.evaluate("window.__uploadProgress") == [False, 100], "the upload progress bar did not fill"
    requests = page.evaluate("window.__htmx")
    polls = [status for _, path, status in requests if path == LIVE_URL]
    assert polls and polls[-1] == 286 and set(polls[:-1]) <= {200, 204}, polls
    assert not [path for _, path, _ in requests if "/status/" in path], "a card polled by itself"
    # 286 stopped the polling: nothing more is asked within another interval.
    page.wait_for_timeout(3500)
    assert len([path for _, path, _ in page.evaluate("window.__htmx") if path == LIVE_URL]) == len(polls)
    page.screenshot(path="/tmp/lumaweb-studio.png", full_page=True)

    # The detail page: both videos actually play from /media/.
    card.locator("a.thumb").click()
    expect(page).to_have_url(f"{e2e.url}/tasks/{task.pk}/")
    expect(page.locator("#task-detail")).to_have_attribute("data-state", "succeeded")
    for selector, prefix in (("#source-video", "/media/sources/"), ("#result-video", "/media/results/")):
        played = page.evaluate(PLAY_VIDEO, selector)
        assert not played.get("missing"), f"{selector} is not on the page"
        assert played["src"].startswith(f"{e2e.url}{prefix}"), played
        assert played["playError"] is None and played["error"] is None, played
        assert played["currentTime"] > 0 and played["readyState"] >= 2, played
        assert played["videoWidth"] > 0 and played["duration"] == pytest.approx(1.5, abs=0.1), played
        assert_served_by_the_app(page, browser, e2e, played["src"])
    page.screenshot(path="/tmp/lumaweb-detail.png", full_page=True)

    # The gallery, through the nav.
    page.locator("header nav").get_by_role("link", name="Gallery").click()
    expect(page).to_have_url(f"{e2e.url}/gallery/")
    tile = page.locator(f"a.tile#tile-{task.pk}")
    expect(tile).to_be_visible()
    expect(tile).to_contain_text("a snowy winter night")
    wait_for_image(page, tile.locator("img"))
    page.screenshot(path="/tmp/lumaweb-gallery.png", full_page=True)

    assert page.problems == []
    assert time.monotonic() - started < 90


def test_a_file_that_is_not_a_video_is_refused_inline(e2e, browser, page, member, tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("These are my holiday notes, not a video.\n" * 20)
    sign_in(page, e2e, member)

    page.locator("#id_video").set_input_files(str(fake))
    page.get_by_label("Prompt").fill("a snowy winter night")
    page.get_by_role("button", name="Create video").click()

    error = page.locator("#task-form .field.has-error .error[role=alert]")
    expect(error).to_have_text("“holiday.mp4”: This is not an MP4, MOV or AVI video.")
    # The swapped-in form keeps the prompt and can be used again.
    expect(page.locator("#id_prompt")).to_have_value("a snowy winter night")
    expect(page.get_by_role("button", name="Create video")).to_be_enabled()
    expect(page.locator("#no-tasks")).to_be_visible()
    expect(page.locator("#task-list article.card")).to_have_count(0)
    assert page.evaluate("window.__noReload") == 1, "the error was shown by a full page load, not by htmx"
    assert not ModifyTask.objects.exists()
    assert page.problems == []
    page.screenshot(path="/tmp/lumaweb-error.png", full_page=True)


def test_an_ended_session_signs_in_back_to_the_studio_and_a_refused_request_is_explained(e2e, browser, page, member):
    sign_in(page, e2e, member)
    # The session ends (signed out in another tab): the next htmx request takes the
    # whole page to sign in, and signing in comes back to the studio, not to /tasks/.
    page.context.clear_cookies(name="sessionid")
    page.get_by_label("Prompt").fill("a snowy winter night")
    page.get_by_role("button", name="Create video").click()
    expect(page).to_have_url(f"{e2e.url}/accounts/login/?next=/")
    # A task waiting for its retry: the page keeps polling for its card, successfully, every 3 s.
    waiting = make_task(member, ModifyTask.State.SUBMITTING, prompt="waiting")
    note = failures.sentence("waiting_to_retry", reason="the provider is busy.")
    assert waiting.retry_later(3600, "rate limited", note)
    assert waiting.state == ModifyTask.State.QUEUED and waiting.next_submit_at is not None
    page.get_by_label("Username").fill(member.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{e2e.url}/")
    expect(page.locator("#request-error")).to_be_hidden()
    expect(page.locator(f"#task-{waiting.pk} .note")).to_have_text(note)

    # Signing in again elsewhere rotates the CSRF token this page still holds: the
    # refused request says what to do instead of leaving a button that does nothing.
    page.context.add_cookies([{"name": "csrftoken", "value": "x" * 32, "url": e2e.url}])
    page.get_by_label("Prompt").fill("a snowy winter night")
    page.get_by_role("button", name="Create video").click()
    expect(page.locator("#request-error")).to_contain_text("Reload the page")
    expect(page.locator("progress.upload-progress")).to_be_hidden()
    expect(page).to_have_url(f"{e2e.url}/")
    with page.expect_response(lambda r: urlsplit(r.url).path == LIVE_URL) as polled:
        pass
    assert polled.value.status == 204  # the card has not changed
    assert parse_qs(urlsplit(polled.value.url).query)["since"][0].startswith(f"{waiting.pk}:")
    page.wait_for_timeout(300)  # htmx has handled that answer
    assert page.locator("#request-error").is_visible(), "the page's successful poll hid the form's error"
    assert list(ModifyTask.objects.all()) == [waiting]


def waiting_task(member, prompt):
    """A task waiting an hour for its retry: the cluster leaves it alone while the test runs."""
    task = make_task(member, S.SUBMITTING, prompt=prompt)
    assert task.retry_later(3600, "rate limited", failures.sentence("waiting_to_retry", reason="the provider is busy."))
    return task


def test_one_poll_for_the_whole_page_whatever_its_cards(e2e, browser, page, member, clip):
    waiting = [waiting_task(member, f"waiting {i}") for i in range(5)]
    sent = []  # (path, since values) of every request the page makes
    page.on("request", lambda r: r.url.startswith(e2e.url) and sent.append(
        (urlsplit(r.url).path, parse_qs(urlsplit(r.url).query).get("since", []))))
    sign_in(page, e2e, member)
    cards = [page.locator(f"#task-{task.pk}") for task in waiting]
    elapsed_before = cards[1].locator(".elapsed").inner_text()

    # One request per interval for the five cards, each naming all five; nothing changed: 204.
    start = len(sent)
    page.wait_for_timeout(6500)
    polls = sent[start:]
    assert polls and all(path == LIVE_URL for path, _ in polls), polls
    assert 1 <= len(polls) <= 3, f"{len(polls)} requests in 6.5 s for one page"
    assert all(sorted(v.split(":")[0] for v in since) == sorted(str(t.pk) for t in waiting) for _, since in polls)
    assert {status for _, path, status in page.evaluate("window.__htmx") if path == LIVE_URL} == {204}
    # The cards not sent again still count their time.
    assert cards[1].locator(".elapsed").inner_text() != elapsed_before

    # One card fails: it alone is swapped in, in place; the other four stay the same elements.
    page.evaluate("ids => ids.forEach(id => { document.getElementById(id).__kept = true; })",
                  [f"task-{task.pk}" for task in waiting])
    assert waiting[0].fail(failures.sentence("stopped_by_staff", username="sam"))
    expect(cards[0]).to_have_attribute("data-state", "failed", timeout=10_000)
    expect(cards[0].locator(".error")).to_have_text("Stopped by staff (sam).")
    kept = page.evaluate("ids => ids.map(id => document.getElementById(id).__kept === true)",
                         [f"task-{task.pk}" for task in waiting])
    assert kept == [False, True, True, True, True]
    with page.expect_request(lambda r: urlsplit(r.url).path == LIVE_URL) as next_poll:
        pass
    since = parse_qs(urlsplit(next_poll.value.url).query)["since"]  # the failed card is followed no more
    assert sorted(v.split(":")[0] for v in since) == sorted(str(t.pk) for t in waiting[1:])

    # All done: the final states come, then the polling stops.
    for task in waiting[1:]:
        assert task.fail(failures.sentence("stopped_by_staff", username="sam"))
    for card in cards:
        expect(card).to_have_attribute("data-state", "failed", timeout=10_000)
    page.wait_for_function("() => window.__htmx.some(([, path, status]) => path === '/tasks/live/' && status === 286)")
    stopped = len(sent)
    page.wait_for_timeout(3500)
    assert sent[stopped:] == [], "the page kept polling with nothing in flight"

    # A new task starts the poll again, and it follows the new card to the end.
    page.locator("#id_video").set_input_files(str(clip(seconds=1.5)))
    page.get_by_label("Prompt").fill("a snowy winter night")
    page.get_by_role("button", name="Create video").click()
    new = page.locator("#task-list article.card").first
    expect(new).to_have_attribute("data-state", "succeeded", timeout=SUCCEEDED_TIMEOUT_MS)
    task = ModifyTask.objects.get(owner=member, prompt="a snowy winter night")
    expect(new).to_have_attribute("id", f"task-{task.pk}")
    restarted = [since for path, since in sent[stopped:] if path == LIVE_URL]
    assert restarted and all([v.split(":")[0] for v in since] == [str(task.pk)] for since in restarted), restarted
    assert page.evaluate("window.__noReload") == 1
    assert page.problems == []
