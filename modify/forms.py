"""The studio's new-task form: everything is checked here, before any credit is spent.

Besides the source and the prompt, that means who may spend what: the key
the task spends (one open to the member, with credits left) and the member's
quota (``team.quotas``), checked again when the task is created.
"""

import contextlib

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model

from modify import backend
from modify.models import ApiKey
from modify.video_probe import MediaError, check_size, temp_path, validate_video
from modify.prompts import prompt_problem
from team import quotas

KEY_NOT_OPEN = "That key is not open to you (it may have been revoked): choose one of the keys listed."


@contextlib.contextmanager
def _path_of(upload):
    """A filesystem path for an upload, whether Django kept it on disk or in memory."""
    if hasattr(upload, "temporary_file_path"):
        yield upload.temporary_file_path()
        return
    with temp_path() as path:
        with open(path, "wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
        yield path


def staff_names():
    """Who can top up a key, as a member reads it: the active staff, by name."""
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
    return ", ".join(user.get_full_name() or user.username for user in staff)


def out_of_credits_message(api_key):
    names = staff_names()
    ask = f"ask staff ({names})" if names else "ask staff"
    return f"The key “{api_key.label}” has run out of credits; {ask} to top it up."


class KeyChoiceField(forms.ModelChoiceField):
    """The keys open to one member, named as they may see them: a team key by its label only."""

    def label_from_instance(self, key):
        whose = f"yours, {key.masked}" if key.owner_id else "team"
        if backend.out_of_credits(key):
            whose += ", out of credits"
        elif key.last_credits is not None:
            whose += f", {key.last_credits} credits"
        return f"{key.label[:40]} ({whose})"


class TaskForm(forms.Form):
    video = forms.FileField(
        required=False,
        label="Video file",
        help_text="MP4, MOV or AVI, at most 10 seconds and 500 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": "video/mp4,video/quicktime,video/x-msvideo,.mp4,.mov,.avi"}),
    )
    video_url = forms.URLField(
        required=False,
        label="…or a video URL",
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/clip.mp4"}),
    )
    prompt = forms.CharField(
        error_messages={"required": "Write a prompt that describes the change."},
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Make it look like a winter night, snow falling"}),
        help_text="In English: describe the change you want.",
    )
    watermark = forms.CharField(required=False, max_length=64, help_text="Optional text drawn into the result.")
    key = KeyChoiceField(
        queryset=ApiKey.objects.none(),
        required=False,  # not sent: the default key
        empty_label=None,
        label="Key",
        help_text="Which API key this task spends.",
        error_messages={"invalid_choice": KEY_NOT_OPEN},
        widget=forms.Select(attrs={"style": "width:100%"}),
    )

    def __init__(self, *args, user=None, remix_of=None, **kwargs):
        """``user``: the member submitting (their keys and quota; None: neither is checked, as for
        the command line, where ``intake.accept`` still checks the quota). ``remix_of``: a succeeded
        task whose result is the source when no other is given.

        The "Key" choice is offered only when more than one key is open to the member; with
        one, that one is spent, and with none the environment's (or the sandbox's).
        """
        super().__init__(*args, **kwargs)
        self.user, self.remix_of = user, remix_of
        keys = list(backend.keys_open_to(user)) if user is not None else []
        self.default_key = backend.default_key(keys)
        if len(keys) > 1:
            self.fields["key"].queryset = backend.keys_open_to(user)
            self.fields["key"].initial = self.default_key
        else:
            del self.fields["key"]

    def clean_prompt(self):
        prompt = self.cleaned_data["prompt"].strip()
        if problem := prompt_problem(prompt):
            raise forms.ValidationError(problem)
        return prompt

    def clean_video_url(self):
        url = self.cleaned_data.get("video_url", "")
        if url and not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("The video URL must start with http:// or https://.")
        return url

    def clean_video(self):
        upload = self.cleaned_data.get("video")
        if not upload:
            return upload
        try:
            check_size(upload.size, settings.LUMA_MAX_VIDEO_BYTES)  # before reading a byte of it
            with _path_of(upload) as path:
                info = validate_video(path, settings.LUMA_MAX_VIDEO_SECONDS, settings.LUMA_MAX_VIDEO_BYTES)
        except MediaError as error:
            raise forms.ValidationError(f"“{upload.name}”: {error}") from None
        upload.seek(0)
        self.video_duration = info.duration
        return upload

    def _check_remix_source(self):
        """With neither a file nor a URL, the remixed result is the source: it must still be there."""
        if self.remix_of is None:
            raise forms.ValidationError("Choose a video file or give a video URL.")
        result = self.remix_of.result_file
        if not result.storage.exists(result.name):
            raise forms.ValidationError("The result to remix is no longer in the archive: choose a video file or give a URL.")

    def _check_key(self, cleaned):
        """The key this task will spend, in ``cleaned["key"]``: the chosen one, else the default.
        One with no credits left is refused, saying who can top it up."""
        if "key" in self.fields:
            if self.errors.get("key"):
                return
            key = cleaned.get("key") or self.default_key
        else:
            key = self.default_key
            posted = self.data.get("key")
            if posted and str(posted) != str(getattr(key, "pk", "")):
                self.add_error(None, KEY_NOT_OPEN)  # a forged or stale choice: only one key (or none) is open
                return
        cleaned["key"] = key
        if key is not None and backend.out_of_credits(key):
            self.add_error("key" if "key" in self.fields else None, out_of_credits_message(key))

    def _check_quota(self):
        try:
            quotas.check(self.user)
        except quotas.QuotaExceeded as refused:
            self.add_error(None, str(refused))

    def clean(self):
        cleaned = super().clean()
        if self.user is not None:
            self._check_key(cleaned)
            self._check_quota()
        has_file, has_url = bool(cleaned.get("video")), bool(cleaned.get("video_url"))
        if not self.errors.get("video") and not self.errors.get("video_url"):
            if has_file and has_url:
                raise forms.ValidationError("Give either a video file or a URL, not both.")
            if not has_file and not has_url:
                self._check_remix_source()
        return cleaned
