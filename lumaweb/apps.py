from django.contrib.admin.apps import AdminConfig


class LumawebAdminConfig(AdminConfig):
    """``django.contrib.admin`` with lumaweb's site (the dashboard on its home); being the project's own
    app config, it also wires the project's signals (the cached signed-in user, ``lumaweb.auth``)."""

    default_site = "lumaweb.admin_site.LumawebAdminSite"

    def ready(self):
        super().ready()
        from lumaweb import auth  # noqa: PLC0415 — models are ready only now

        auth.connect()
