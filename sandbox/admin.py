"""The sandbox's models in the admin, only while the sandbox is mounted (``SANDBOX_ENABLED``).

Beside a real provider they would only crowd the admin's home, and their
pages would show a stand-in nobody uses.
"""

from django.conf import settings
from django.contrib import admin

from sandbox.models import Account, Task, UploadedFile


class AccountAdmin(admin.ModelAdmin):
    list_display = ["key_hash", "credits"]
    readonly_fields = ["key_hash"]


class TaskAdmin(admin.ModelAdmin):
    list_display = ["task_id", "prompt", "grade", "success_flag", "created_at", "completed_at"]
    list_filter = ["success_flag", "grade"]
    search_fields = ["task_id", "prompt"]
    # The callback URL's path carries the app's per-task secret token: never shown.
    exclude = ["callback_url"]
    readonly_fields = [f.name for f in Task._meta.fields if f.name != "callback_url"]


class UploadedFileAdmin(admin.ModelAdmin):
    list_display = ["file_name", "upload_path", "size", "created_at"]
    readonly_fields = [f.name for f in UploadedFile._meta.fields]


MODEL_ADMINS = {Account: AccountAdmin, Task: TaskAdmin, UploadedFile: UploadedFileAdmin}


def register(site=admin.site):
    """Put the sandbox's models on ``site`` while the sandbox is enabled, and take them off when it is
    not; calling it again changes nothing."""
    for model, model_admin in MODEL_ADMINS.items():
        if settings.SANDBOX_ENABLED and not site.is_registered(model):
            site.register(model, model_admin)
        elif not settings.SANDBOX_ENABLED and site.is_registered(model):
            site.unregister(model)


register()
