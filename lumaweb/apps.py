from django.contrib.admin.apps import AdminConfig


class LumawebAdminConfig(AdminConfig):
    """``django.contrib.admin`` with lumaweb's site (the dashboard on its home)."""

    default_site = "lumaweb.admin_site.LumawebAdminSite"
