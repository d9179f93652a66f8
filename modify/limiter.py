"""Keeping the calls to the provider within its limits, for every worker on every host.

kie.ai takes at most 20 new generation requests per 10 s per account and
drops the rest with 429: a refused generate is an attempt spent and a task
delayed for nothing. So the sending job takes a slot right before generate,
from a limit every worker shares, and a task that finds none goes back to
the queue (``modify.sending``) instead of being sent to be refused.

One mechanism serves two limits: a key has N slots, and a slot once taken is
held until its ``free_at``:

* generate: ``LUMA_RATE_LIMIT`` slots per API key, each held for
  ``LUMA_RATE_WINDOW_SECONDS`` + ``LUMA_RATE_MARGIN_SECONDS`` from the moment
  it was taken: a sliding window, so no stretch of that length anywhere holds
  more than N grants. The margin absorbs the calls' different trips: the
  provider, counting what arrives, sees at most N in any of its windows too.
* uploads: ``LUMA_UPLOAD_CONCURRENCY`` slots per key, held while an upload
  runs and given back after it (should its worker die, the slot frees once
  no job could still be running). kie.ai documents no upload limit; a few at
  once per key bound what a burst of 500 MB sources pushes through one
  account, and leave the other workers free for polls and archives.
  (record-info has its own pacing, in the sweep: ``modify.sweep``.)

A refused caller learns when to come back (``Slot.wait``). A burst refuses
many at once: each refused generate caller is given a turn of its own in a
line, spaced by the window over the limit (the pace at which slots free), so
that they come back one by one rather than all at the next free slot. The
line is first come, first served: while turns are still to come, a newcomer
joins the line even if a slot is free (it is someone's turn's); one coming
back at its turn (``waited``) takes a free slot, or the next one to free.

Backends: with ``REDIS_URL``, Redis (one Lua script per call over a sorted set
per key: atomic, on Redis's own clock); else the database (``ProviderSlot``
rows, taken by conditional UPDATE, on the app's clock: hosts sharing one
database keep their clocks in sync, as NTP does). Keys are never secrets: an
``ApiKey``'s id, or a hash of the environment's (or the sandbox's) key.
"""

import hashlib
import random
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import redis
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from modify.models import ProviderSlot
from modify.models.provider_slot import LINE
from modify.timing import worker_gave_up_after

# A refused upload asks again this soon: its slots are given back when an upload ends, not at a known time.
UPLOAD_RECHECK_SECONDS = 5.0
_NEVER_TAKEN = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)


@dataclass(frozen=True)
class Slot:
    """The answer to a request for a slot: ``granted``, or the ``wait`` (seconds) until this caller's turn."""

    granted: bool
    wait: float = 0.0
    token: object = None  # a granted slot: what giving it back needs


def key_for(api_key, secret):
    """Whose limit a call counts against: the stored key's id, else a hash of the secret (never the secret)."""
    if api_key is not None:
        return f"key-{api_key.pk}"
    return "secret-" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def generate_hold_seconds():
    """How long a generate slot stays taken: the provider's window and the margin."""
    return settings.LUMA_RATE_WINDOW_SECONDS + settings.LUMA_RATE_MARGIN_SECONDS


def take_generate(key, waited=False):
    """A slot for one generate call against ``key``'s limit, or when to come back for one.

    ``waited``: the caller already waited for its turn in the line; refused
    again (a slot freed a moment late), it comes back at the next free slot.
    """
    limit = settings.LUMA_RATE_LIMIT
    if limit <= 0:
        return Slot(True)
    hold = generate_hold_seconds()
    return backend().take(f"generate:{key}", limit, hold, step=0 if waited else hold / limit)


@contextmanager
def upload_slot(key):
    """One of ``key``'s upload slots for the ``with`` block, given back after; or a refusal (not ``granted``)."""
    limit = settings.LUMA_UPLOAD_CONCURRENCY
    if limit <= 0:
        yield Slot(True)
        return
    name, slots = f"upload:{key}", backend()
    slot = slots.take(name, limit, worker_gave_up_after().total_seconds())
    if not slot.granted:
        yield Slot(False, wait=min(slot.wait, UPLOAD_RECHECK_SECONDS))
        return
    try:
        yield slot
    finally:
        slots.give_back(name, slot.token)


_backends = {}


def backend():
    """Redis with ``REDIS_URL``, else the database: the same for every worker of a deployment."""
    url = settings.REDIS_URL
    if url not in _backends:
        _backends[url] = RedisSlots(url) if url else DatabaseSlots()
    return _backends[url]


class DatabaseSlots:
    """Slots as ``ProviderSlot`` rows: read, then taken by an UPDATE conditional on the ``uses`` read."""

    def take(self, key, limit, hold, step=0.0):
        """Take a free slot of ``key``'s ``limit`` for ``hold`` seconds, unless (``step``: a newcomer)
        turns in the line are still to come; refused, a turn ``step`` after the line's last."""
        rows = self._slots(key, limit)
        queued = step and self._last_turn(key) > timezone.now()
        for _ in range(0 if queued else limit + 5):  # each round lost means another caller won a slot: bounded
            now = timezone.now()
            free = [row for row in rows if row[1] <= now]
            if not free:
                break
            number, _, uses = random.choice(free)  # not all on the same row
            taken = ProviderSlot.objects.filter(key=key, number=number, uses=uses).update(
                free_at=now + timedelta(seconds=hold), uses=F("uses") + 1)
            if taken:
                return Slot(True, token=(number, uses + 1))
            rows = self._slots(key, limit)
        now = timezone.now()
        soonest = max(min(free_at for _, free_at, _ in rows), now)
        return Slot(False, wait=self._turn(key, soonest, step, now))

    def give_back(self, key, token):
        """Free a slot taken with ``token`` now (unless its hold ran out and another caller has it)."""
        number, uses = token
        ProviderSlot.objects.filter(key=key, number=number, uses=uses).update(free_at=timezone.now())

    def _slots(self, key, limit):
        """``(number, free_at, uses)`` of the key's slots, made on first use (or when the limit grew)."""
        rows = list(ProviderSlot.objects.filter(key=key, number__gte=0, number__lt=limit)
                    .values_list("number", "free_at", "uses"))
        if len(rows) < limit:
            have = {number for number, _, _ in rows}
            ProviderSlot.objects.bulk_create([ProviderSlot(key=key, number=number, free_at=_NEVER_TAKEN)
                                              for number in range(limit) if number not in have], ignore_conflicts=True)
            return self._slots(key, limit)
        return rows

    def _last_turn(self, key):
        """The last turn given out in the key's line (long past when nobody waits)."""
        return ProviderSlot.objects.filter(key=key, number=LINE).values_list("free_at", flat=True).first() or _NEVER_TAKEN

    def _turn(self, key, soonest, step, now):
        """Seconds until this refused caller's turn: ``step`` after the line's last (and not before
        ``soonest``), which it becomes; without ``step``, ``soonest``."""
        for _ in range(50 if step else 0):
            line = ProviderSlot.objects.filter(key=key, number=LINE).values_list("free_at", "uses").first()
            if line is None:
                ProviderSlot.objects.bulk_create([ProviderSlot(key=key, number=LINE, free_at=_NEVER_TAKEN)],
                                                 ignore_conflicts=True)
                continue
            turn = max(soonest, line[0] + timedelta(seconds=step))
            moved = ProviderSlot.objects.filter(key=key, number=LINE, uses=line[1]).update(free_at=turn,
                                                                                       uses=F("uses") + 1)
            if moved:
                return (turn - now).total_seconds()
        return (soonest - now).total_seconds()


# KEYS: the slots (a sorted set: a holder per member, scored by when its slot frees), the line (its last
# turn). ARGV: the limit, the hold and the line's step (step 0: not in the line), the holder's token.
# Times in µs, on Redis's clock.
_TAKE = """
local limit, hold, step, token = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local full = redis.call('ZCARD', KEYS[1]) >= limit
if not full and not (step > 0 and last > now) then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + hold), token)
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(hold / 1000) + 1000))
  return {1, '0'}
end
local turn = now
if full then turn = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]) end
if step > 0 then
  if last + step > turn then turn = last + step end
  redis.call('SET', KEYS[2], string.format('%.0f', turn),
             'PX', string.format('%.0f', math.ceil((turn - now) / 1000) + 1000))
end
return {0, string.format('%.0f', turn - now)}
"""


class RedisSlots:
    """Slots as a sorted set per key, taken by one Lua script (atomic, on Redis's clock)."""

    def __init__(self, url):
        self.client = redis.Redis.from_url(url)
        self._take = self.client.register_script(_TAKE)

    @staticmethod
    def names(key):
        """The key's sorted set and line (one hash slot, should the Redis be a cluster)."""
        return f"lumaweb:limiter:{{{key}}}:slots", f"lumaweb:limiter:{{{key}}}:line"

    def take(self, key, limit, hold, step=0.0):
        token = uuid.uuid4().hex
        granted, wait = self._take(keys=self.names(key), args=[limit, round(hold * 1e6), round(step * 1e6), token])
        if granted:
            return Slot(True, token=token)
        return Slot(False, wait=max(float(wait), 0.0) / 1e6)

    def give_back(self, key, token):
        self.client.zrem(self.names(key)[0], token)
