"""manage.py rotate_encryption_key: re-encrypt every stored API key with the newest encryption key.

To rotate: put the new key first in ``FIELD_ENCRYPTION_KEYS`` and keep the
old ones after it (every listed key decrypts, the first encrypts, see
``modify.crypto``), restart, run this command, then drop the old keys. Keys
are read and rewritten in batches, each row only if it still holds what was
read (a key re-entered meanwhile is already under the newest key). Nothing is
printed but counts, ids and the masked form of a key; the run is logged as
an ``AuditEvent("keys_rotated")``.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from modify import crypto
from modify.models import ApiKey
from team.models import AuditEvent


def _api_keys(count):
    return f"{count} API key{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = "Re-encrypt every API key secret with the first key of FIELD_ENCRYPTION_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=200, help="Keys read and rewritten per transaction.")

    def handle(self, *args, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        if not settings.FIELD_ENCRYPTION_KEYS:
            self.stdout.write(self.style.WARNING(
                "FIELD_ENCRYPTION_KEYS is empty: secrets are re-encrypted with the key derived from SECRET_KEY."))
        rotated, unreadable, last_pk = 0, [], 0
        while batch := list(ApiKey.objects.filter(pk__gt=last_pk).order_by("pk")
                            .only("pk", "last4", "secret_encrypted")[:batch_size]):
            last_pk = batch[-1].pk
            with transaction.atomic():
                for api_key in batch:
                    try:
                        renewed = crypto.rotate(api_key.secret_encrypted)
                    except ValueError:
                        unreadable.append(api_key)
                        continue
                    rotated += ApiKey.objects.filter(pk=api_key.pk, secret_encrypted=api_key.secret_encrypted).update(
                        secret_encrypted=renewed)
            if options["verbosity"] > 1:
                self.stdout.write(f"… {rotated} re-encrypted so far (up to key {last_pk}).")
        detail = f"{_api_keys(rotated)} re-encrypted with the first FIELD_ENCRYPTION_KEYS key"
        if unreadable:
            detail += f"; {len(unreadable)} could not be decrypted and were left as they were"
        AuditEvent.log("keys_rotated", detail=detail)
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {_api_keys(rotated)} with the first key of "
                                             "FIELD_ENCRYPTION_KEYS. Once every process runs with it first, "
                                             "the old keys can be removed."))
        if unreadable:
            for api_key in unreadable:
                self.stderr.write(f"API key {api_key.pk} ({api_key.masked}) cannot be decrypted with any "
                                  "configured key: it was left as it was; enter it again in the admin.")
            raise CommandError(f"{_api_keys(len(unreadable))} could not be decrypted (listed above).")
