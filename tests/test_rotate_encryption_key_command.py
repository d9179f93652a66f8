"""manage.py rotate_encryption_key: with the new key listed first and the old after it, every stored key is
re-encrypted under the new one, batch by batch; afterwards the new key alone (and another SECRET_KEY) reads
them all and the old one reads none. It prints counts, never a secret, and logs a "keys_rotated" event."""

import logging

import pytest
from django.core.management import CommandError, call_command

from modify import crypto
from modify.models import ApiKey
from team.models import AuditEvent

pytestmark = pytest.mark.django_db

OLD, NEW = "old-field-key-material", "new-field-key-material"
OLD_SECRET_KEY = "the-old-django-secret-key-for-this-test"
PLAINTEXTS = [f"kie-FAKE-{n:02d}-rotate-DO-NOT-LEAK-{n:02d}" for n in range(5)]


@pytest.fixture
def old_keys(settings, member):
    """Five keys under the old material: four under FIELD_ENCRYPTION_KEYS=[OLD], one from before it was set
    (under the key derived from SECRET_KEY)."""
    settings.SECRET_KEY = OLD_SECRET_KEY
    settings.FIELD_ENCRYPTION_KEYS = []
    stored = [store(member, 0)]
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    stored += [store(member if n % 2 else None, n) for n in range(1, 5)]
    return stored


def store(owner, n):
    api_key = ApiKey(owner=owner, label=f"Key {n}")
    api_key.secret = PLAINTEXTS[n]
    api_key.save()
    return api_key


def readable():
    """Each stored key's plaintext, or None where the configured keys cannot open it."""
    found = []
    for api_key in ApiKey.objects.order_by("pk"):
        try:
            found.append(api_key.secret)
        except ValueError:
            found.append(None)
    return found


def assert_nothing_leaked(output, caplog):
    texts = [output.out, output.err, *(e.detail for e in AuditEvent.objects.all()),
             *(r.getMessage() for r in caplog.records)]
    for plaintext in PLAINTEXTS:
        assert not [text for text in texts if plaintext in text]


def test_every_key_stays_readable_through_rotation_and_only_the_new_key_reads_them_after(
        old_keys, settings, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    before = list(ApiKey.objects.order_by("pk").values_list("secret_encrypted", flat=True))
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    assert readable() == PLAINTEXTS  # both readable while it re-encrypts
    call_command("rotate_encryption_key", "--batch-size", "2", verbosity=2)
    output = capsys.readouterr()
    assert "Re-encrypted 5 API keys with the first key of FIELD_ENCRYPTION_KEYS" in output.out
    assert output.out.count("re-encrypted so far") == 3  # batches of 2, 2 and 1
    after = list(ApiKey.objects.order_by("pk").values_list("secret_encrypted", flat=True))
    assert all(old != new for old, new in zip(before, after))

    settings.FIELD_ENCRYPTION_KEYS, settings.SECRET_KEY = [NEW], "a-different-django-secret-key"
    assert readable() == PLAINTEXTS
    settings.FIELD_ENCRYPTION_KEYS, settings.SECRET_KEY = [OLD], OLD_SECRET_KEY
    assert readable() == [None] * 5

    event = AuditEvent.objects.get()
    assert (event.kind, event.actor, event.detail) == (
        "keys_rotated", "system", "5 API keys re-encrypted with the first FIELD_ENCRYPTION_KEYS key")
    assert_nothing_leaked(output, caplog)


def test_a_key_no_configured_key_opens_is_left_alone_named_and_fails_the_run(old_keys, settings, capsys, caplog):
    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # the old key forgotten; only the SECRET_KEY-derived one still opens
    with pytest.raises(CommandError, match="4 API keys could not be decrypted"):
        call_command("rotate_encryption_key")
    output = capsys.readouterr()
    assert "Re-encrypted 1 API key " in output.out
    for api_key in old_keys[1:]:
        assert f"API key {api_key.pk} ({api_key.masked}) cannot be decrypted" in output.err
        assert ApiKey.objects.get(pk=api_key.pk).secret_encrypted == api_key.secret_encrypted  # untouched
    settings.SECRET_KEY = "a-different-django-secret-key"
    assert readable() == [PLAINTEXTS[0], None, None, None, None]
    assert AuditEvent.objects.get().detail == ("1 API key re-encrypted with the first FIELD_ENCRYPTION_KEYS key; "
                                               "4 could not be decrypted and were left as they were")
    assert_nothing_leaked(output, caplog)


def test_a_key_entered_again_while_rotating_is_not_overwritten(old_keys, settings, monkeypatch):
    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    target, rotate = old_keys[2], crypto.rotate

    def rotate_while_staff_enter_it_again(token):
        if token == target.secret_encrypted:
            again = ApiKey.objects.get(pk=target.pk)
            again.secret = "kie-entered-again-meanwhile"
            again.save()
        return rotate(token)

    monkeypatch.setattr(crypto, "rotate", rotate_while_staff_enter_it_again)
    call_command("rotate_encryption_key")
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    assert readable() == [*PLAINTEXTS[:2], "kie-entered-again-meanwhile", *PLAINTEXTS[3:]]


def test_without_field_encryption_keys_it_says_the_secret_key_is_used(member, settings, capsys):
    settings.FIELD_ENCRYPTION_KEYS = []
    store(member, 0)
    call_command("rotate_encryption_key")
    out = capsys.readouterr().out
    assert "FIELD_ENCRYPTION_KEYS is empty" in out and "Re-encrypted 1 API key " in out
    assert readable() == [PLAINTEXTS[0]]
