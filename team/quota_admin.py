"""Quotas in the admin: the team's default (the row without a member) and per-member overrides.

Every change is an ``AuditEvent`` "quota_changed" by the staff member who
made it, saying what changed ("tasks per day: 5 → 10"), so the audit log
answers "who raised Ivan's limit, and when".
"""

from django import forms
from django.contrib import admin
from django.db.models import F

from team.models import AuditEvent, Quota
from team.quotas import LIMITS

def _limit_name(name):
    return Quota._meta.get_field(name).verbose_name


def _shown(quota, name):
    value = getattr(quota, name)
    if value is not None:
        return str(value)
    return "no limit" if quota.member_id is None else "team default"


def _whose(quota):
    return f"{quota.member}" if quota.member_id else "the team's default"


class QuotaForm(forms.ModelForm):
    class Meta:
        model = Quota
        fields = ["member", *LIMITS]
        help_texts = {
            "tasks_per_day": "Tasks a member may submit per calendar day (resets at midnight). "
                             "Empty: the team's default on a member's row, no limit on the default.",
            "tasks_in_flight": "Tasks a member may have queued or running at once. "
                               "Empty: the team's default on a member's row, no limit on the default.",
            "credits_per_month": "Provider credits a member may spend per calendar month. "
                                 "Empty: the team's default on a member's row, no limit on the default.",
        }

    def clean_member(self):
        """One row per member and one team default, said plainly (the database would refuse either way)."""
        member = self.cleaned_data.get("member")
        others = Quota.objects.exclude(pk=self.instance.pk)
        if member is None and others.filter(member__isnull=True).exists():
            raise forms.ValidationError("There is already a team default quota: change that one instead.")
        if member is not None and others.filter(member=member).exists():
            raise forms.ValidationError(f"{member} already has a quota of their own: change that one instead.")
        return member


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    form = QuotaForm
    list_display = ["whose", "per_day", "in_flight", "per_month"]
    list_display_links = ["whose"]
    list_select_related = ["member"]
    search_fields = ["member__username"]
    ordering = [F("member__username").asc(nulls_first=True)]  # the team's default (no member) first, on every database

    @admin.display(description="Member", ordering="member__username")
    def whose(self, quota):
        return quota.member.get_username() if quota.member_id else "Team default"

    @admin.display(description="Tasks per day")
    def per_day(self, quota):
        return _shown(quota, "tasks_per_day")

    @admin.display(description="Tasks in flight")
    def in_flight(self, quota):
        return _shown(quota, "tasks_in_flight")

    @admin.display(description="Credits per month")
    def per_month(self, quota):
        return _shown(quota, "credits_per_month")

    def save_model(self, request, obj, form, change):
        before = Quota.objects.select_related("member").filter(pk=obj.pk).first() if change else None
        super().save_model(request, obj, form, change)
        self._log(request, obj, _changes(before, obj))

    def delete_model(self, request, obj):
        self._log(request, obj, f"removed {_whose(obj)}")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for quota in queryset.select_related("member"):
            self._log(request, quota, f"removed {_whose(quota)}")
        super().delete_queryset(request, queryset)

    def _log(self, request, quota, detail):
        if detail:
            AuditEvent.log("quota_changed", by=request.user, member=quota.member, detail=detail)


def _changes(before, after):
    """"set <whose>: ..." for a new row, "<whose>: a → b, ..." for a changed one; "" when nothing changed."""
    if before is None:
        limits = ", ".join(f"{_limit_name(name)} {_shown(after, name)}" for name in LIMITS)
        return f"set {_whose(after)}: {limits}"
    changed = [f"{_limit_name(name)}: {_shown(before, name)} → {_shown(after, name)}"
               for name in LIMITS if getattr(before, name) != getattr(after, name)]
    if before.member_id != after.member_id:
        changed.insert(0, f"moved from {_whose(before)} to {_whose(after)}")
    return f"{_whose(after)}: " + ", ".join(changed) if changed else ""
