"""The sandbox refuses generate over its rate limit as kie.ai does: code 429 in an HTTP 200 envelope,
with Retry-After, creating nothing and spending nothing; a moment later it takes tasks again."""

import threading
from datetime import timedelta

import pytest
import requests

from modify import provider
from modify.provider import LumaClient
from sandbox.models import Account, Task
from tests.conftest import SANDBOX_AUTH as AUTH
from tests.conftest import SANDBOX_KEY as KEY
from tests.conftest import upload_clip


@pytest.fixture
def video_url(api, clip):
    return upload_clip(api, clip(seconds=1))


def generate(api, video_url, headers=AUTH, prompt="a snowy winter night"):
    return requests.post(f"{api}/api/v1/modify/generate", headers=headers, json={"prompt": prompt, "videoUrl": video_url},
                         timeout=30)


def as_if_time_passed(seconds):
    """Every sandbox task was created ``seconds`` earlier (test-only)."""
    for task in Task.objects.all():
        Task.objects.filter(pk=task.pk).update(created_at=task.created_at - timedelta(seconds=seconds))


def test_the_21st_generate_in_10_seconds_gets_429_and_creates_nothing_then_200_later(api, video_url, settings):
    answers = [generate(api, video_url) for _ in range(20)]
    assert [a.json()["code"] for a in answers] == [200] * 20
    credits = Account.for_key(KEY).credits
    assert credits == settings.SANDBOX_INITIAL_CREDITS - 20 * settings.SANDBOX_TASK_COST

    refused = generate(api, video_url)
    assert refused.status_code == 200  # the envelope's code counts, as upstream
    body = refused.json()
    assert body["code"] == 429 and body["data"] is None
    assert body["msg"] == "Rate limited: at most 20 new tasks per 10 s; retry after " f"{refused.headers['Retry-After']} s."
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert Task.objects.count() == 20
    assert Account.for_key(KEY).credits == credits
    assert "Retry-After" not in answers[0].headers

    as_if_time_passed(10)
    again = generate(api, video_url)
    assert again.json()["code"] == 200
    assert Task.objects.count() == 21


def test_retry_after_says_when_the_oldest_task_leaves_the_window(api, video_url, settings):
    settings.SANDBOX_RATE_LIMIT = 2
    generate(api, video_url), generate(api, video_url)
    as_if_time_passed(7)  # both created 7 s ago: the window frees in about 3 s
    refused = generate(api, video_url)
    assert refused.json()["code"] == 429
    assert int(refused.headers["Retry-After"]) == 3


def test_the_client_reads_the_refusal_as_a_rate_limit_with_its_retry_after(api, video_url, settings):
    settings.SANDBOX_RATE_LIMIT = 1
    client = LumaClient(KEY, api_base=api, upload_base=api)
    assert client.generate("sunset", video_url)
    with pytest.raises(provider.RateLimitError) as refused:
        client.generate("sunset", video_url)
    assert refused.value.code == 429 and refused.value.retryable
    assert 1 <= refused.value.retry_after <= 10


def test_each_account_has_its_own_limit(api, video_url, settings):
    settings.SANDBOX_RATE_LIMIT = 1
    settings.SANDBOX_API_KEYS = [KEY, "second-key"]
    assert generate(api, video_url).json()["code"] == 200
    assert generate(api, video_url).json()["code"] == 429
    assert generate(api, video_url, headers={"Authorization": "Bearer second-key"}).json()["code"] == 200


def test_no_limit_when_switched_off(api, video_url, settings):
    settings.SANDBOX_RATE_LIMIT = 0
    assert [generate(api, video_url).json()["code"] for _ in range(3)] == [200] * 3


def test_a_refused_request_is_refused_before_its_body_is_even_fetched(api, settings):
    """Over the limit, nothing is fetched: the answer is 429, not the 422 an unreachable videoUrl would get."""
    settings.SANDBOX_RATE_LIMIT = 1
    account = Account.for_key(KEY)
    Task.objects.create(account=account, prompt="p", video_url="https://x/a.mp4", base_url=api, source="s.mp4")
    assert generate(api, "http://127.0.0.1:9/unreachable.mp4").json()["code"] == 429


def test_requests_at_once_never_pass_the_limit(api, video_url, settings):
    """Twelve clients at the same instant, limit five: five tasks, seven refusals, five tasks' credits."""
    settings.SANDBOX_RATE_LIMIT = 5
    codes, start = [], threading.Barrier(12)

    def client():
        start.wait()
        codes.append(generate(api, video_url).json()["code"])

    threads = [threading.Thread(target=client) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [200] * 5 + [429] * 7
    assert Task.objects.count() == 5
    assert Account.for_key(KEY).credits == settings.SANDBOX_INITIAL_CREDITS - 5 * settings.SANDBOX_TASK_COST
