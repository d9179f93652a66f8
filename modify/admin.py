"""Staff oversight: tasks, API keys and what each key has spent.

Secrets are write-only here: the form takes a new secret, the pages only
ever show its last four characters.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Count, Q

from modify import backend, failures, provider
from modify.models import ApiKey, ModifyTask, TaskEvent
from modify.states import Actor


class TaskCountsMixin:
    """Columns counting the tasks behind each row (a key's, a member's): what was spent, and how it went."""

    tasks_relation = "tasks"

    def get_queryset(self, request):
        relation, states = self.tasks_relation, ModifyTask.State
        return (
            super()
            .get_queryset(request)
            .annotate(
                tasks_count=Count(relation),
                succeeded_count=Count(relation, filter=Q(**{f"{relation}__state": states.SUCCEEDED})),
                failed_count=Count(relation, filter=Q(**{f"{relation}__state": states.FAILED})),
            )
        )

    @admin.display(description="Tasks", ordering="tasks_count")
    def task_total(self, obj):
        return obj.tasks_count

    @admin.display(description="Succeeded", ordering="succeeded_count")
    def succeeded_total(self, obj):
        return obj.succeeded_count

    @admin.display(description="Failed", ordering="failed_count")
    def failed_total(self, obj):
        return obj.failed_count


class ApiKeyForm(forms.ModelForm):
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Paste the key from kie.ai. It is encrypted at rest and never shown again; leave empty to keep the current one.",
    )

    class Meta:
        model = ApiKey
        fields = ["label", "owner", "is_active"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("new_secret"):
            self.add_error("new_secret", "A new key needs its secret.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("new_secret"):
            self.instance.secret = self.cleaned_data["new_secret"]
        return super().save(commit)


@admin.register(ApiKey)
class ApiKeyAdmin(TaskCountsMixin, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["label", "masked", "owner", "is_active", "task_total", "succeeded_total", "failed_total", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["label", "owner__username"]
    readonly_fields = ["masked", "created_at", "last_used_at"]
    actions = ["check_credits"]

    list_select_related = ["owner"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if backend.uses_sandbox():
            self.message_user(
                request,
                "The app runs against the built-in sandbox, so this key is sent there, not to kie.ai. "
                "Set LUMA_API_BASE=https://api.kie.ai (or LUMA_API_KEY) to use the real service.",
                messages.WARNING,
            )

    @admin.display(description="Key")
    def masked(self, obj):
        return obj.masked if obj.last4 else "—"

    @admin.action(description="Check remaining credits with the provider")
    def check_credits(self, request, queryset):
        for api_key in queryset:
            try:
                credits = backend.client(api_key.secret).credit()
            except (provider.ProviderError, ValueError) as error:
                self.message_user(request, f"{api_key}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{api_key}: {credits} credits left.", messages.SUCCESS)


class TaskEventInline(admin.TabularInline):
    """The task's history, read-only: what happened, who did it, when."""

    model = TaskEvent
    fields = ["created_at", "kind", "from_state", "to_state", "actor", "actor_user", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ModifyTask)
class ModifyTaskAdmin(admin.ModelAdmin):
    list_display = ["prompt_short", "owner", "state", "is_sandbox", "api_key", "created_at", "finished_at", "shared"]
    list_filter = ["state", "failed_stage", "is_sandbox", "shared", "source_kind"]
    search_fields = ["prompt", "provider_task_id", "owner__username", "error_message"]
    date_hierarchy = "created_at"
    list_select_related = ["owner", "api_key"]
    fieldsets = [
        (None, {"fields": ["id", "owner", "prompt", "watermark", "shared", "state", "failed_stage", "error_code",
                           "error_message", "status_note", "is_sandbox", "api_key", "remix_of", "retried_as"]}),
        ("Source", {"fields": ["source_kind", "source_name", "source_file", "source_url", "source_duration",
                               "provider_video_url"]}),
        ("With the provider", {"fields": ["provider_task_id", "submit_attempts", "next_submit_at", "enqueued_at",
                                          "callback_deadline", "poll_count", "next_poll_at", "last_polled_at",
                                          "callback_received_at"]}),
        ("Result", {"fields": ["result_url", "result_file", "poster", "result_duration", "result_width",
                               "result_height", "result_size"]}),
        ("Times", {"fields": ["created_at", "submitting_at", "generating_at", "archiving_at", "finished_at",
                              "updated_at"]}),
    ]
    # Everything but "shared" is the lifecycle's to write; the callback token is never shown.
    readonly_fields = [name for _, options in fieldsets for name in options["fields"] if name != "shared"]
    inlines = [TaskEventInline]
    actions = ["mark_failed"]

    @admin.display(description="Prompt", ordering="prompt")
    def prompt_short(self, obj):
        return obj.prompt[:60]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        """Deleting would abandon a paid provider task and erase its history: staff stop tasks instead."""
        return False

    def save_model(self, request, obj, form, change):
        """Staff change only ``shared`` here, and it is logged as their action."""
        if "shared" in form.changed_data:
            obj.set_shared(form.cleaned_data["shared"], by=request.user, actor=Actor.STAFF)

    @admin.action(description="Stop the selected tasks (mark them failed)", permissions=["change"])
    def mark_failed(self, request, queryset):
        message = failures.sentence("stopped_by_staff", username=request.user.get_username())
        stopped = sum(task.fail(message, actor=Actor.STAFF, by=request.user) for task in queryset.active())
        self.message_user(request, f"Stopped {stopped} task(s).")


class TeamMemberAdmin(TaskCountsMixin, UserAdmin):
    """Django's user admin, plus what each member has asked of the provider."""

    tasks_relation = "modify_tasks"
    list_display = [*UserAdmin.list_display, "task_total", "succeeded_total", "failed_total"]


admin.site.unregister(User)
admin.site.register(User, TeamMemberAdmin)
