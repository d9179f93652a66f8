"""The admin site: Django's, with the account's dashboard on its home page.

The figures come from ``modify.dashboard``. The task queue's models leave the
list of apps for the dashboard's queue panel, which links to them; the
sandbox's are there only while it is mounted (``sandbox.admin``).
"""

from django.contrib import admin

from modify import dashboard

QUEUE_APP = "django_q"


class LumawebAdminSite(admin.AdminSite):
    site_header = "lumaweb administration"
    site_title = "lumaweb"

    def index(self, request, extra_context=None):
        apps = self.get_app_list(request)
        queue = next((app for app in apps if app["app_label"] == QUEUE_APP), None)
        context = {
            "dashboard": dashboard.dashboard(),
            "queue_models": queue["models"] if queue else [],
            "app_list": [app for app in apps if app["app_label"] != QUEUE_APP],
            "may_check_credits": request.user.has_perm("modify.view_apikey"),
            **(extra_context or {}),
        }
        return super().index(request, context)
