"""Staff oversight in the admin: a dashboard on its home, tasks, API keys and what each key has spent.

Secrets are write-only here: the form takes a new secret, the pages only
ever show its last four characters. Tasks change only through the
lifecycle: a task's page offers the staff actions of ``modify.oversight``
(the same the task page offers), and the list runs them on a selection.
The task list stays fast at any size: its columns come from the task row
and two joined rows, it never counts the whole table, and no filter scans it.
"""

from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.template.defaultfilters import truncatechars
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from modify import dashboard, oversight
from modify.models import ApiKey, ModifyTask, TaskEvent
from modify.states import Actor
from team import keys
from team.key_forms import KeyRefused
from team.models import AuditEvent

ADMIN_CSS = {"all": ["css/admin.css"]}


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


# --- API keys ----------------------------------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(TaskCountsMixin, admin.ModelAdmin):
    list_display = ["label", "masked", "owner", "is_active", "credits_left", "task_total", "succeeded_total",
                    "failed_total", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["label", "owner__username"]
    # Keys are added on the Keys page, which checks them with the provider first; here staff
    # rename, close or reopen them. The secret is never shown, and cannot be changed here.
    fields = ["label", "masked", "owner", "is_active", "created_by", "created_at", "revoked_at", "last_used_at",
              "last_credits", "credits_checked_at"]
    readonly_fields = ["masked", "owner", "created_by", "created_at", "revoked_at", "last_used_at", "last_credits",
                       "credits_checked_at"]
    change_list_template = "admin/modify/apikey/change_list.html"
    actions = ["check_credits"]

    list_select_related = ["owner"]

    def get_urls(self):
        check_all = self.admin_site.admin_view(require_POST(self.check_all_credits))
        return [path("check-credits/", check_all, name="modify_apikey_check_credits"), *super().get_urls()]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        """Saved, and a close or a reopening logged for the audit (never the secret)."""
        if "is_active" in form.changed_data:
            obj.revoked_at = None if obj.is_active else timezone.now()
        super().save_model(request, obj, form, change)
        if "is_active" in form.changed_data:
            kind = "key_reopened" if obj.is_active else "key_revoked"
            AuditEvent.log(kind, by=request.user, member=obj.owner, api_key=obj, detail=obj.label)

    @admin.display(description="Key")
    def masked(self, obj):
        return obj.masked if obj.last4 else "—"

    @admin.display(description="Credits left", ordering="last_credits")
    def credits_left(self, obj):
        return "—" if obj.last_credits is None else obj.last_credits

    @admin.action(description="Check remaining credits with the provider")
    def check_credits(self, request, queryset):
        for api_key in queryset:
            try:
                credits = keys.check_credits(api_key)  # remembered on the key, as the schedule does
            except KeyRefused as refused:
                self.message_user(request, f"{api_key}: {refused}", messages.ERROR)
            else:
                self.message_user(request, f"{api_key}: {credits} credits left.", messages.SUCCESS)

    def check_all_credits(self, request):
        """The dashboard's "Check credits now": every open key, and the environment's."""
        if not self.has_view_permission(request):
            messages.error(request, "You may not check the keys' credits.")
        else:
            for name, outcome in dashboard.check_credits():
                self.message_user(request, f"{name}: {outcome}", messages.SUCCESS if outcome.ok else messages.ERROR)
        return redirect("admin:index")


# --- Tasks: the list's filters --------------------------------------------------------------------------


class MemberFilter(admin.RelatedFieldListFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "member"


class KeyFilter(admin.RelatedFieldListFilter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "key"
        self.empty_value_display = "none (the environment's)"


class ProviderFilter(admin.SimpleListFilter):
    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [("sandbox", "Sandbox"), ("real", "Real (kie.ai)")]

    def queryset(self, request, queryset):
        if self.value() in ("sandbox", "real"):
            return queryset.filter(is_sandbox=self.value() == "sandbox")
        return queryset


class CreatedRangeForm(forms.Form):
    created_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and end < start:
            raise forms.ValidationError("The end date is before the start date.")
        return cleaned


class CreatedBetween(admin.ListFilter):
    """Tasks created between two days (both included, in the site's time zone); a GET form of two dates."""

    title = "created"
    template = "admin/modify/modifytask/created_filter.html"
    parameters = ("created_from", "created_to")

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in self.parameters:
            if name in params:
                value = params.pop(name)
                self.used_parameters[name] = value[-1] if isinstance(value, list) else value
        self.form = CreatedRangeForm({name: self.used_parameters.get(name, "") for name in self.parameters})

    def has_output(self):
        return True

    def expected_parameters(self):
        return list(self.parameters)

    def queryset(self, request, queryset):
        if not self.used_parameters or not self.form.is_valid():
            return queryset  # a bad date is said in the filter, and filters nothing
        start, end = self.form.cleaned_data["created_from"], self.form.cleaned_data["created_to"]
        zone = timezone.get_current_timezone()
        if start:
            queryset = queryset.filter(created_at__gte=datetime.combine(start, time.min, zone))
        if end:
            queryset = queryset.filter(created_at__lt=datetime.combine(end + timedelta(days=1), time.min, zone))
        return queryset

    def choices(self, changelist):
        kept = [(name, value) for name, value in changelist.params.items() if name not in self.parameters]
        yield {
            "form": self.form,
            "kept": kept,
            "selected": bool(self.used_parameters),
            "clear": changelist.get_query_string(remove=self.parameters),
        }


# --- Tasks -------------------------------------------------------------------------------------------


class TaskEventInline(admin.TabularInline):
    """The task's history, read-only: what happened, who did it, when."""

    model = TaskEvent
    fields = ["created_at", "kind", "from_state", "to_state", "actor", "actor_user", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "History"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor_user")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# What each bulk action says it did, with the number of tasks it did it to.
BULK_DONE = {
    "check": "Asked the provider about {n} task(s).",
    "retry": "Sent {n} task(s) again.",
    "rearchive": "Archiving {n} result(s) again.",
    "stop": "Stopped {n} task(s).",
    "hide": "Hid {n} result(s) from the gallery.",
}


@admin.register(ModifyTask)
class ModifyTaskAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "prompt_text", "summary"]
    list_display_links = ["thumbnail", "prompt_text"]
    list_filter = ["state", ("owner", MemberFilter), ("api_key", KeyFilter), ProviderFilter, CreatedBetween]
    # The member has a filter; searching their name too would join every row to the users.
    search_fields = ["prompt", "=provider_task_id", "error_message"]
    list_select_related = ["owner", "api_key"]
    list_per_page = 50
    # At 10,000 tasks and more: no count of the whole table, no date drill-down (a scan per
    # page view), no facet counts.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fieldsets = [
        (None, {"fields": ["owner", "prompt", "state", "shared", "error_message", "status_note", "failed_stage",
                           "error_code", "api_key", "provider_task_id", "is_sandbox", "created_at", "finished_at"]}),
        ("Source", {"classes": ["collapse"], "fields": ["id", "watermark", "source_kind", "source_name", "source_file",
                                                        "source_url_shown", "source_duration", "provider_video_url",
                                                        "remix_of", "retried_as"]}),
        ("With the provider", {"classes": ["collapse"], "fields": [
            "credits", "submit_attempts", "next_submit_at", "enqueued_at", "callback_deadline", "poll_count",
            "next_poll_at", "last_polled_at", "callback_received_at"]}),
        ("Result", {"classes": ["collapse"], "fields": ["result_url", "result_file", "poster", "result_duration",
                                                        "result_width", "result_height", "result_size"]}),
        ("Times", {"classes": ["collapse"], "fields": ["submitting_at", "generating_at", "archiving_at", "updated_at"]}),
    ]
    # Everything but "shared" is the lifecycle's to write; the callback token is never shown.
    readonly_fields = [name for _, options in fieldsets for name in options["fields"] if name != "shared"]
    inlines = [TaskEventInline]
    actions = ["check_with_provider", "retry_failed", "archive_again", "mark_failed", "hide_from_gallery"]

    class Media:
        css = ADMIN_CSS

    # --- The list's columns
    @admin.display(description="Result")
    def thumbnail(self, obj):
        if obj.poster:
            return format_html('<img class="task-thumb" src="{}" alt="Poster of the result" loading="lazy" width="96" height="54">',
                               obj.poster.url)
        return format_html('<span class="task-thumb task-thumb-empty">{}</span>', obj.get_state_display())

    @admin.display(description="Prompt")
    def prompt_text(self, obj):
        return format_html('<span class="task-prompt" title="{}">{}</span>', obj.prompt, truncatechars(obj.prompt, 300))

    @admin.display(description="Task", ordering="created_at")
    def summary(self, obj):
        """State (and why it failed), member, key, provider and when: one narrow column, so the prompt has the room."""
        reason = format_html('<small class="task-reason">{}</small>', truncatechars(obj.error_message, 120)) if obj.is_failed else ""
        key = str(obj.api_key) if obj.api_key_id else "no stored key"
        created = timezone.localtime(obj.created_at)
        return format_html(
            '<strong class="task-state-{}">{}</strong>{}<small>{} · {} · {}</small><small><time datetime="{}">{}</time></small>',
            obj.state, obj.get_state_display(), reason, obj.owner.get_username(), key,
            "sandbox" if obj.is_sandbox else "kie.ai", created.isoformat(), f"{created.day} {created:%b %Y, %H:%M}",
        )

    def action_checkbox(self, obj):
        """The row's checkbox, written out: the widget's template costs a fifth of the page at 50 rows."""
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="Select this task for an action">',
                           ACTION_CHECKBOX_NAME, obj.pk)

    @admin.display(description="Source URL")
    def source_url_shown(self, obj):
        return obj.source_url_shown or "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        """Deleting would abandon a paid provider task and erase its history: staff stop tasks instead."""
        return False

    def save_model(self, request, obj, form, change):
        """Staff change only ``shared`` here, and it is logged as their action."""
        if "shared" in form.changed_data:
            obj.set_shared(form.cleaned_data["shared"], by=request.user, actor=Actor.STAFF)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        here = reverse("admin:modify_modifytask_change", args=[object_id])
        return super().change_view(request, object_id, form_url, {"next": here, **(extra_context or {})})

    # --- Actions on a selection (the same as on a task's page)
    def _run_on(self, request, queryset, name):
        action = oversight.ACTIONS[name]
        done, skipped = 0, 0
        for task in queryset.select_related("owner", "api_key"):
            if not action.applies(task):
                skipped += 1
                continue
            outcome = action.do(task, request.user)
            done += outcome.ok
            if name == "check" or not outcome.ok:
                self.message_user(request, f"“{truncatechars(task.prompt, 40)}”: {outcome}",
                                  messages.INFO if outcome.ok else messages.ERROR)
        summary = BULK_DONE[name].format(n=done)
        if skipped:
            summary += f" {skipped} skipped: {action.why_not}"
        self.message_user(request, summary, messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Check the selected tasks with the provider now", permissions=["change"])
    def check_with_provider(self, request, queryset):
        self._run_on(request, queryset, "check")

    @admin.action(description="Retry the selected failed tasks", permissions=["change"])
    def retry_failed(self, request, queryset):
        self._run_on(request, queryset, "retry")

    @admin.action(description="Archive the selected results again", permissions=["change"])
    def archive_again(self, request, queryset):
        self._run_on(request, queryset, "rearchive")

    @admin.action(description="Stop tracking the selected tasks (mark them failed)", permissions=["change"])
    def mark_failed(self, request, queryset):
        self._run_on(request, queryset, "stop")

    @admin.action(description="Hide the selected results from the gallery", permissions=["change"])
    def hide_from_gallery(self, request, queryset):
        self._run_on(request, queryset, "hide")


# --- Members -----------------------------------------------------------------------------------------


class TeamMemberAdmin(TaskCountsMixin, UserAdmin):
    """Django's user admin, plus what each member has asked of the provider."""

    tasks_relation = "modify_tasks"
    list_display = [*UserAdmin.list_display, "task_total", "succeeded_total", "failed_total"]


admin.site.unregister(User)
admin.site.register(User, TeamMemberAdmin)
