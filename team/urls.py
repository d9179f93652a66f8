from django.urls import path

from team import accounts, audit, keys, stats

urlpatterns = [
    # Members: joining, their profile and password, their keys.
    path("join/<str:token>/", accounts.accept_invitation, name="accept-invitation"),
    path("profile/", accounts.profile, name="profile"),
    path("profile/password/", accounts.PasswordChange.as_view(), name="password-change"),
    path("keys/", keys.key_list, name="keys"),
    path("keys/<int:pk>/revoke/", keys.revoke_key, name="key-revoke"),
    # Staff.
    path("team/invitations/", accounts.invitations, name="invitations"),
    path("team/invitations/<int:pk>/revoke/", accounts.revoke_invitation, name="invitation-revoke"),
    path("team/audit/", audit.audit_list, name="audit"),
    path("team/audit.csv", audit.audit_csv, name="audit-csv"),
    path("team/stats/", stats.stats_page, name="stats"),
    path("team/stats.csv", stats.stats_csv, name="stats-csv"),
]
