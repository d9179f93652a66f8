"""Signing in, with the member answered from the cache on every request after.

Every signed-in request loads its user (``get_user``); the studio polls every
3 s, so that lookup is most of what a poll costs. The user is kept in the
cache (Redis, or the shared cache folder) for a few minutes and forgotten the
moment the row is saved or deleted, so a password change, a deactivation or
a new staff flag applies at once. Permissions are not cached: they are
asked of the database where a page needs them.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in
from django.core.cache import cache
from django.db.models.signals import post_delete, post_save

USER_CACHE_SECONDS = 300


def _key(user_id):
    return f"auth:user:{user_id}"


class CachedModelBackend(ModelBackend):
    def get_user(self, user_id):
        user = cache.get(_key(user_id))
        if user is None:
            user = super().get_user(user_id)
            if user is not None:
                cache.set(_key(user_id), user, USER_CACHE_SECONDS)
        return user if user is not None and self.user_can_authenticate(user) else None


def remember_user(sender, request, user, **kwargs):
    """Signing in has the user at hand: the next request need not load it."""
    cache.set(_key(user.pk), user, USER_CACHE_SECONDS)


def forget_user(sender, instance, update_fields=None, **kwargs):
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        cache.set(_key(instance.pk), instance, USER_CACHE_SECONDS)  # signing in touched only the time
    else:
        cache.delete(_key(instance.pk))


def connect():
    """Called once the apps are ready (``lumaweb.apps``)."""
    user_logged_in.connect(remember_user, dispatch_uid="lumaweb.auth.remember_user")
    post_save.connect(forget_user, sender=get_user_model(), dispatch_uid="lumaweb.auth.forget_saved_user")
    post_delete.connect(forget_user, sender=get_user_model(), dispatch_uid="lumaweb.auth.forget_deleted_user")
