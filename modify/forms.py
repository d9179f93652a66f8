"""The studio's new-task form: everything is checked here, before any credit is spent."""

import contextlib

from django import forms
from django.conf import settings

from modify.video_probe import MediaError, check_size, temp_path, validate_video
from modify.prompts import prompt_problem


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

    def __init__(self, *args, remix_of=None, **kwargs):
        """``remix_of``: a succeeded task whose result is the source when no other is given."""
        super().__init__(*args, **kwargs)
        self.remix_of = remix_of

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

    def clean(self):
        cleaned = super().clean()
        has_file, has_url = bool(cleaned.get("video")), bool(cleaned.get("video_url"))
        if not self.errors.get("video") and not self.errors.get("video_url"):
            if has_file and has_url:
                raise forms.ValidationError("Give either a video file or a URL, not both.")
            if not has_file and not has_url:
                self._check_remix_source()
        return cleaned
