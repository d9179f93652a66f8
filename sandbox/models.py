"""What the sandbox provider keeps: accounts (credits), uploaded files, tasks."""

import hashlib
import json
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone


def key_hash(api_key):
    """Accounts are keyed by a hash, so the sandbox never stores a key either."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class Account(models.Model):
    key_hash = models.CharField(max_length=64, unique=True)
    credits = models.IntegerField()

    @classmethod
    def for_key(cls, api_key):
        account, _ = cls.objects.get_or_create(
            key_hash=key_hash(api_key), defaults={"credits": settings.SANDBOX_INITIAL_CREDITS}
        )
        return account

    def spend(self, amount):
        """Take ``amount`` credits if there are enough; False (and nothing taken) if not."""
        won = Account.objects.filter(pk=self.pk, credits__gte=amount).update(credits=F("credits") - amount)
        return bool(won)

    def refund(self, amount):
        Account.objects.filter(pk=self.pk).update(credits=F("credits") + amount)


def _upload_path(instance, filename):
    return f"sandbox/uploads/{instance.id}/{filename}"


def _task_path(instance, filename):
    return f"sandbox/tasks/{instance.task_id}/{filename}"


class UploadedFile(models.Model):
    """A file given to the upload API; public until it expires (3 days upstream)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    file = models.FileField(upload_to=_upload_path, max_length=300)
    file_name = models.CharField(max_length=255)
    upload_path = models.CharField(max_length=255, blank=True)
    mime_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    @property
    def expires_at(self):
        return self.created_at + timedelta(seconds=settings.SANDBOX_UPLOAD_TTL)

    @property
    def is_expired(self):
        return timezone.now() >= self.expires_at


def _new_task_id():
    return secrets.token_hex(16)


class Task(models.Model):
    """One generation, with the answers ``record-info`` gives about it."""

    class Flag(models.IntegerChoices):
        GENERATING = 0, "generating"
        SUCCESS = 1, "success"
        CREATE_FAILED = 2, "create task failed"
        GENERATE_FAILED = 3, "generation failed"
        CALLBACK_FAILED = 4, "success, callback failed"

    task_id = models.CharField(max_length=32, unique=True, default=_new_task_id)
    account = models.ForeignKey(Account, on_delete=models.CASCADE)
    prompt = models.TextField()
    video_url = models.URLField(max_length=2000)
    callback_url = models.URLField(max_length=2000, blank=True)
    watermark = models.CharField(max_length=255, blank=True)
    base_url = models.URLField(help_text="Where this sandbox was reached; results are served from there.")
    faults = models.CharField(max_length=500, blank=True)
    source = models.FileField(upload_to=_task_path, max_length=300)
    result = models.FileField(upload_to=_task_path, max_length=300, blank=True)
    grade = models.CharField(max_length=50, blank=True)
    success_flag = models.PositiveSmallIntegerField(choices=Flag.choices, default=Flag.GENERATING)
    error_code = models.IntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    callbacks_sent = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(null=True, blank=True, help_text="Not complete before this (SANDBOX_MIN_SECONDS).")
    completed_at = models.DateTimeField(null=True, blank=True)

    def save(self, *args, **kwargs):
        """A new task is due SANDBOX_MIN_SECONDS after its ``created_at`` as saved (the generate view
        sets it last), per the web process that creates it: the cluster only honours the date."""
        if self.due_at is None:
            self.due_at = self.created_at + timedelta(seconds=settings.SANDBOX_MIN_SECONDS)
        super().save(*args, **kwargs)

    @property
    def param_json(self):
        return json.dumps(
            {"callBackUrl": self.callback_url, "prompt": self.prompt, "videoUrl": self.video_url, "waterMark": self.watermark}
        )

    @property
    def result_url(self):
        return f"{self.base_url}/files/results/{self.task_id}.mp4"

    @property
    def expires_at(self):
        """Results live SANDBOX_RESULT_TTL after completion, as the file host serving them decides."""
        return self.completed_at + timedelta(seconds=settings.SANDBOX_RESULT_TTL) if self.completed_at else None

    @property
    def is_expired(self):
        return self.expires_at is not None and timezone.now() >= self.expires_at

    def finish(self, flag, error_code=None, error_message=""):
        """Record the outcome once (a conditional UPDATE: a second finish is a no-op)."""
        now = timezone.now()
        won = Task.objects.filter(pk=self.pk, success_flag=self.Flag.GENERATING).update(
            success_flag=flag,
            error_code=error_code,
            error_message=error_message,
            completed_at=now,
            result=self.result.name or "",
            grade=self.grade,
        )
        self.refresh_from_db()
        return bool(won)

    def as_record_info(self):
        def ms(moment):
            return int(moment.timestamp() * 1000) if moment else None

        succeeded = self.success_flag in (self.Flag.SUCCESS, self.Flag.CALLBACK_FAILED)
        return {
            "taskId": self.task_id,
            "paramJson": self.param_json,
            "successFlag": self.success_flag,
            "response": (
                {"taskId": self.task_id, "originUrls": [self.video_url], "resultUrls": [self.result_url]}
                if succeeded
                else None
            ),
            "createTime": ms(self.created_at),
            "completeTime": ms(self.completed_at),
            "errorCode": self.error_code,
            "errorMessage": self.error_message or None,
        }
