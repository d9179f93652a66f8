"""Idempotent start-up chores for ``make run``: the sweep and credits schedules, and the demo admin.

The admin user ``admin`` gets ``DEMO_ADMIN_PASSWORD`` at every start when it
is set; otherwise a password is generated the first time and printed once.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django_q.models import Schedule

from modify.schedules import ensure_sweep_schedule
from team.schedules import ensure_credits_schedule

ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = "Create the django-q2 sweep and credits schedules and the demo admin user (idempotent)."

    def handle(self, *args, **options):
        ensure_sweep_schedule(Schedule)
        ensure_credits_schedule(Schedule)
        User = get_user_model()
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "")
        admin = User.objects.filter(username=ADMIN_USERNAME).first()
        if password:
            if admin is None:
                admin = User(username=ADMIN_USERNAME, is_staff=True, is_superuser=True)
            admin.set_password(password)
            admin.save()
            self.stdout.write(f"Admin user '{ADMIN_USERNAME}' uses DEMO_ADMIN_PASSWORD.")
        elif admin is None:
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(ADMIN_USERNAME, "", password)
            self.stdout.write(self.style.WARNING(
                f"Created admin user '{ADMIN_USERNAME}' with password: {password}\n"
                "This is shown once. Set DEMO_ADMIN_PASSWORD to choose your own."
            ))
        else:
            self.stdout.write(f"Admin user '{ADMIN_USERNAME}' exists (set DEMO_ADMIN_PASSWORD to reset its password).")
