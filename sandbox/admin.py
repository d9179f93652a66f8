from django.contrib import admin

from sandbox.models import Account, Task, UploadedFile


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["key_hash", "credits"]
    readonly_fields = ["key_hash"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["task_id", "prompt", "grade", "success_flag", "created_at", "completed_at"]
    list_filter = ["success_flag", "grade"]
    search_fields = ["task_id", "prompt"]
    # The callback URL's path carries the app's per-task secret token: never shown.
    exclude = ["callback_url"]
    readonly_fields = [f.name for f in Task._meta.fields if f.name != "callback_url"]


@admin.register(UploadedFile)
class UploadedFileAdmin(admin.ModelAdmin):
    list_display = ["file_name", "upload_path", "size", "created_at"]
    readonly_fields = [f.name for f in UploadedFile._meta.fields]
