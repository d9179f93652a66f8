"""The two roles: member, and staff (who reach the admin, the oversight pages and stats).

Staff are ``is_staff`` users in the "Staff" group, which holds every
permission on the app's models and the task queue's, so that a staff member
invited through the app can work in the admin without being a superuser.
"""

from django.contrib.auth.models import Group, Permission

STAFF_GROUP = "Staff"
STAFF_APPS = ("modify", "team", "django_q", "axes", "auth", "sandbox")


def staff_group():
    group, created = Group.objects.get_or_create(name=STAFF_GROUP)
    if created or not group.permissions.exists():
        group.permissions.set(Permission.objects.filter(content_type__app_label__in=STAFF_APPS))
    return group


def make_staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(staff_group())
    return user
