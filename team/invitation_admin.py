"""Invitations in the admin: a read-only record of who invited whom, and a way for staff to revoke.

Invitations are made on the team page (/team/invitations/), which shows the
link once: the admin cannot add one (it would have nowhere to show the
token), never shows the token's digest, and changes an invitation only by
revoking it, through ``team.invitations.revoke`` so the audit log has it.
"""

from django.contrib import admin, messages
from django.utils import timezone

from team import invitations as invites
from team.models import Invitation


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(s, s.capitalize()) for s in (invites.OPEN, invites.ACCEPTED, invites.EXPIRED, invites.REVOKED)]

    def queryset(self, request, queryset):
        now = timezone.now()
        return {
            invites.OPEN: lambda: queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now),
            invites.ACCEPTED: lambda: queryset.filter(accepted_at__isnull=False),
            invites.REVOKED: lambda: queryset.filter(accepted_at__isnull=True, revoked_at__isnull=False),
            invites.EXPIRED: lambda: queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__lte=now),
        }.get(self.value(), lambda: queryset)()


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "as_staff", "status", "created_by", "created_at", "expires_at", "accepted_by", "accepted_at"]
    list_filter = [StatusFilter, "as_staff", "created_at"]
    list_select_related = ["created_by", "accepted_by"]
    search_fields = ["email", "created_by__username", "accepted_by__username"]
    date_hierarchy = "created_at"
    # Everything but the digest, read-only.
    fields = ["email", "as_staff", "status", "created_by", "created_at", "expires_at", "accepted_by", "accepted_at",
              "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]
    change_list_template = "team/accounts/invitation_change_list.html"

    @admin.display(description="Status")
    def status(self, obj):
        return invites.status(obj)

    def has_add_permission(self, request):
        return False  # made on the team page, which shows the link once

    def has_delete_permission(self, request, obj=None):
        return False  # the record of who invited whom stays; revoke instead

    def has_change_permission(self, request, obj=None):
        # The list may revoke (an action); an invitation's own page only reads.
        return obj is None and super().has_change_permission(request)

    @admin.action(description="Revoke the selected open invitations", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = [inv for inv in queryset.select_related("created_by") if invites.revoke(inv, by=request.user)]
        skipped = queryset.count() - len(revoked)
        if revoked:
            self.message_user(request, f"Revoked {len(revoked)} invitation{'s' if len(revoked) != 1 else ''}: "
                                       f"{', '.join(str(inv) for inv in revoked)}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} were not open (already accepted, revoked or expired): left as they were.",
                              messages.WARNING)
