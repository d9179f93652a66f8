"""Following an open studio page's cards with one request, whatever their number.

The page sends back, for each card it shows in flight, the card's id and the
version it was rendered at (``since=<id>:<version>``). The answer names only
the cards whose version moved: one narrow read of those ids by primary key,
of which only the member's own rows count (the ids come from the page: another
member's are ignored), then the full rows of the changed ones alone. An
unchanged set costs that one read and renders nothing.

A version is a short hash of what a live card shows that can change while it
is in flight: its state (and so its progress strip), the note of what it waits
for, the key it spends. Its elapsed time the page counts by itself. So a
version needs no new column and no clock to agree on: the page holds a card
out of date exactly when its version differs from the row's, and a version it
got wrong only costs that card being sent once more.

The read is the poll's whole cost, so it is cut to the bone: by primary key
alone (with the owner in the WHERE clause SQLite walks the owner's index, all
the tasks the member ever made, instead of ten primary-key lookups), and with
SQL the ORM writes once per number of cards rather than on every poll
(building a query costs several times more than running this one).
"""

import functools
import hashlib
import uuid
from dataclasses import dataclass, field

from django.db import connections

from modify.models import ModifyTask
from modify.states import LIVE

# What a version is made of, as columns; read, with the owner, for every card the page follows.
VERSION_FIELDS = ("state", "status_note", "api_key_id")
# More cards than a studio page ever shows in flight is not a page polling.
MAX_CARDS = 100


class BadSince(ValueError):
    """The ``since`` values are not what a studio page sends."""


def version(state, status_note, api_key_id):
    text = f"{state}|{status_note}|{api_key_id or ''}"
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def version_of(task):
    """The version of ``task``'s card as it is rendered now."""
    return version(task.state, task.status_note, task.api_key_id)


def parse_since(values):
    """``["<task id>:<version>", ...]`` → ``{UUID: version}``; BadSince if any is malformed."""
    if len(values) > MAX_CARDS:
        raise BadSince(f"A page follows at most {MAX_CARDS} cards; this asked for {len(values)}.")
    shown = {}
    for value in values:
        task_id, _, card_version = value.partition(":")
        try:
            shown[uuid.UUID(task_id)] = card_version
        except ValueError:
            raise BadSince("Each since value must be <task id>:<version>, as the studio page sends it.") from None
    return shown


@dataclass
class Changes:
    cards: list = field(default_factory=list)  # the changed tasks, to render (each swaps itself in, out of band)
    in_flight: bool = False  # any followed card still live: the page keeps polling


@functools.cache
def _versions_sql(count, alias):
    """The SELECT of the owner, id and version columns of ``count`` tasks by id, as the ORM writes it."""
    placeholders = [uuid.UUID(int=i) for i in range(count)]
    query = ModifyTask.objects.using(alias).filter(pk__in=placeholders).order_by()
    return query.values_list("owner_id", "pk", *VERSION_FIELDS).query.sql_with_params()[0]


def _version_rows(shown):
    """``(owner id, task id, *VERSION_FIELDS)`` of the tasks ``shown`` names, from one primary-key read."""
    alias = ModifyTask.objects.db
    connection = connections[alias]
    as_stored = {ModifyTask._meta.pk.get_db_prep_value(task_id, connection): task_id for task_id in shown}
    with connection.cursor() as cursor:
        cursor.execute(_versions_sql(len(as_stored), alias), list(as_stored))
        return [(owner_id, as_stored[stored_id], *rest) for owner_id, stored_id, *rest in cursor.fetchall()]


def changes(owner, shown):
    """What changed among the cards ``shown`` (``{task id: version}``) of ``owner``'s tasks."""
    if not shown:
        return Changes()
    changed, in_flight = [], False
    for owner_id, pk, state, status_note, api_key_id in _version_rows(shown):
        if owner_id != owner.pk:
            continue  # never another member's card
        in_flight = in_flight or state in LIVE
        if version(state, status_note, api_key_id) != shown[pk]:
            changed.append(pk)
    cards = list(ModifyTask.objects.filter(pk__in=changed).order_by().select_related("api_key")) if changed else []
    return Changes(cards=cards, in_flight=in_flight)
