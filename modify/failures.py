"""Every sentence a member reads about a task that failed or waits: one table.

A sentence says what happened and what to do, in the member's words, never
a secret: provider messages that echo the callback URL lose its token here
(the client already strips the API key). Code names a sentence by its key;
``for_provider_error`` picks the one for each kind of provider error, so
callers branch on exception types, never on codes.
"""

import re

from modify import provider
from modify.logfilters import redact

SENTENCES = {
    # The provider refused or failed the task.
    "key_rejected": "The provider rejected the API key. Ask staff to check the key in the admin.",
    "out_of_credits": "The provider account is out of credits. Ask staff to top it up.",
    "request_rejected": "The provider rejected the request: {reason}",
    "generation_failed": "The provider could not generate this video ({reason}). Try a different prompt or video.",
    "feature_disabled": "The provider has disabled this feature ({reason}).",
    "task_unknown": "The provider no longer knows this task ({reason}).",
    "provider_kept_failing": "Gave up after several tries. {reason} Try again later.",
    "provider_refused": "The provider refused the request: {reason}",
    "no_result_file": "The provider reported success but gave no result file.",
    # Sending the task.
    "source_unusable": "The video URL cannot be used: {reason}",
    "send_crashed": "Submitting the task failed unexpectedly; staff can see the details in the logs.",
    "unanswered_no_callback": (
        "The provider did not answer in time, so it may have started this task anyway. To avoid paying twice "
        "it was not sent again: check the gallery later, or submit it again."
    ),
    "never_confirmed": "The provider never confirmed this task, nor called back; please submit it again.",
    "key_revoked": "The key “{label}” was revoked before this task was sent; choose another key and submit it again.",
    "worker_stopped": "The worker handling this task stopped before it finished; please submit it again.",
    # Waiting and archiving.
    "gave_up_generating": "The provider did not finish within {minutes} minutes; gave up waiting.",
    "gave_up_archiving": "The result could not be archived within {minutes} minutes; gave up.",
    "archive_failed": "The result could not be archived: {reason}",
    "archive_crashed": "Archiving the result failed unexpectedly; staff can see the details in the logs.",
    # Configuration.
    "no_public_url": "The app is misconfigured: PUBLIC_BASE_URL is not set, so the sandbox cannot be reached.",
    "key_unreadable": (
        "The API key “{label}” cannot be decrypted (was FIELD_ENCRYPTION_KEYS or SECRET_KEY changed?). "
        "Ask staff to enter it again in the admin."
    ),
    "no_key": "No provider API key is configured: ask staff to set LUMA_API_KEY or add one in the admin.",
    "provider_changed": "This task was started with {provider}, which the app no longer talks to; please submit it again.",
    "source_gone": "The original video is no longer in the archive, so it cannot be sent again: start a new task with it.",
    # Staff.
    "stopped_by_staff": "Stopped by staff ({username}).",
    # Notes on a task that is still live (``status_note``), not failures.
    "waiting_to_retry": "Waiting to retry: {reason}",
    "provider_busy": "The provider is rate limiting requests.",
    "provider_maintenance": "The provider is under maintenance.",
    "provider_server_error": "The provider had a server error.",
    "provider_unreachable": "The provider could not be reached.",
    "provider_garbled": "The provider sent an answer that could not be read.",
    "awaiting_callback": "The provider did not answer in time; waiting for its callback.",
    "waiting_for_slot": "Waiting for a slot: kie.ai takes at most {limit} new tasks per {window} s.",
    "waiting_for_upload_slot": "Waiting for a slot: at most {limit} videos are uploaded to kie.ai at once.",
}

_BY_ERROR = [
    (provider.AuthenticationError, "key_rejected"),
    (provider.InsufficientCreditsError, "out_of_credits"),
    (provider.ValidationError, "request_rejected"),
    (provider.GenerationFailedError, "generation_failed"),
    (provider.FeatureDisabledError, "feature_disabled"),
    (provider.NotFoundError, "task_unknown"),
]


_RETRY_REASONS = [
    (provider.RateLimitError, "provider_busy"),
    (provider.MaintenanceError, "provider_maintenance"),
    (provider.ProviderUnavailable, "provider_unreachable"),
    (provider.ProtocolError, "provider_garbled"),
]


class Sentence(str):
    """A sentence that remembers which one it is (``key``), so stats can count failures by kind."""

    def __new__(cls, text, key):
        sentence = super().__new__(cls, text)
        sentence.key = key
        return sentence


def sentence(key, **facts):
    """The sentence ``key`` with its facts filled in, without secrets. A fact that ends a sentence of
    its own ("…the prompt.") loses its full stop where the template goes on with punctuation."""
    template = SENTENCES[key]
    for name, value in facts.items():
        if isinstance(value, (str, Exception)) and re.search(r"\{" + name + r"\}[.)]", template):
            facts[name] = str(value).rstrip(".")
    return Sentence(redact(template.format(**facts)), key)


def for_provider_error(error):
    """The sentence for a provider error that ends a task."""
    for kind, key in _BY_ERROR:
        if isinstance(error, kind):
            return sentence(key, reason=error.message or "no reason given")
    if error.retryable or isinstance(error, provider.ProtocolError):
        return sentence("provider_kept_failing", reason=retry_reason(error))
    return sentence("provider_refused", reason=error.message or "no reason given")


def retry_reason(error):
    """Why a task waits to retry after a provider error that may pass, as the note's reason."""
    for kind, key in _RETRY_REASONS:
        if isinstance(error, kind):
            return sentence(key)
    return sentence("provider_server_error")
