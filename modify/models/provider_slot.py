"""Slots of the provider's limits, shared by every worker: the database backend of ``modify.limiter``.

A limit of N per key is N rows (``number`` 0 … N-1); a slot is free once its
``free_at`` has passed. Taking one is a conditional UPDATE on the ``uses``
it was read with, so of two workers (threads, processes, hosts) that read the
same free slot exactly one wins, on SQLite as on PostgreSQL, without locks
held across calls. The row numbered ``LINE`` is not a slot: its ``free_at``
is when the next refused caller gets its turn (see ``modify.limiter``).
"""

from django.db import models

LINE = -1


class ProviderSlot(models.Model):
    key = models.CharField(max_length=100, help_text="Which limit and whose: e.g. generate:key-3 (never a secret).")
    number = models.SmallIntegerField(help_text=f"0 … N-1; {LINE}: the line of refused callers.")
    free_at = models.DateTimeField(help_text="Free again from this moment.")
    uses = models.PositiveBigIntegerField(default=0, help_text="Times taken: what a conditional UPDATE compares.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "number"], name="provider_slot_per_key")]

    def __str__(self):
        return f"{self.key} #{self.number}"
