"""Adding a key: a label and the secret, and the provider's word on it before anything is saved.

The form is where a refused key stops: ``clean`` asks the provider's credit
endpoint with the secret, and an answer other than a credit count becomes a
sentence the member can act on (``refusal``). The secret is never rendered
back (the widget drops it) and never quoted in an error.
"""

import string

from django import forms
from django.db.models import Q

from modify import backend, provider
from modify.models import ApiKey

REFUSED = "kie.ai refused this key: check it was copied whole."
UNREACHABLE = "The app could not reach kie.ai to check it; try again."
BUSY = "kie.ai is busy and could not check this key just now; try again in a minute."
UNCLEAR = "kie.ai did not say how many credits this key has{code}; try again, or ask staff."
# What a key may be made of: printable ASCII without spaces (it travels in an HTTP header).
KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + string.punctuation)


class KeyRefused(Exception):
    """The provider would not give a key's credits; ``str()`` says why in member words (never the secret)."""


def refusal(error):
    """Member words for why checking a key failed: a provider error, a configuration error or an unreadable key."""
    if isinstance(error, provider.AuthenticationError):
        return REFUSED
    if isinstance(error, provider.ProviderUnavailable):
        return UNREACHABLE
    if isinstance(error, provider.ProviderError):
        if error.retryable:
            return BUSY
        return UNCLEAR.format(code=f" (it answered with code {error.code or error.http_status})"
                              if error.code or error.http_status else "")
    if isinstance(error, backend.ConfigurationError):
        return error.sentence
    return "This key cannot be read back (was FIELD_ENCRYPTION_KEYS or SECRET_KEY changed?): add it again."


def ask_credits(secret):
    """The credits left on the account behind ``secret``, as the provider counts them; KeyRefused otherwise."""
    try:
        return backend.client(secret).credit()
    except (provider.ProviderError, backend.ConfigurationError) as error:
        raise KeyRefused(refusal(error)) from None


class KeyForm(forms.Form):
    """A new key for ``owner`` (None: a team key). Valid only once the provider has counted its credits
    (``self.credits``)."""

    label = forms.CharField(
        max_length=100,
        error_messages={"required": "Give the key a name you will recognise."},
        help_text="A name you will recognise, such as “My kie.ai account”.",
    )
    secret = forms.CharField(
        label="API key",
        max_length=200,
        strip=True,
        error_messages={"required": "Paste the API key from kie.ai."},
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text="Paste it from kie.ai. It is checked with kie.ai first, then stored encrypted; "
                  "nobody can read it back, only its last four characters are shown.",
    )

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner, self.credits = owner, None

    def clean_label(self):
        return " ".join(self.cleaned_data["label"].split())

    def clean_secret(self):
        secret = self.cleaned_data["secret"]
        if not set(secret) <= KEY_CHARACTERS:
            raise forms.ValidationError("An API key has no spaces, line breaks or accents: check it was copied whole.")
        if len(secret) < 8:
            raise forms.ValidationError("That is too short to be an API key: check it was copied whole.")
        return secret

    def clean(self):
        cleaned = super().clean()
        label, secret = cleaned.get("label"), cleaned.get("secret")
        if not label or not secret:
            return cleaned
        if secret in label or (len(label) >= 8 and label in secret):
            self.data = self.data.copy()
            self.data[self.add_prefix("label")] = ""  # nor shown back in the field
            self.add_error("label", "The label is shown to others: do not put the key itself in it.")
            return cleaned
        if same := self._already_added(secret):
            raise forms.ValidationError(f"This key is already here, as “{same.label}” ({same.masked}).")
        try:
            self.credits = ask_credits(secret)
        except KeyRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        return cleaned

    def _already_added(self, secret):
        """An open key of the same owner (or of the team) with this secret: only those ending alike are opened."""
        scope = Q(owner=self.owner) if self.owner is not None else Q(owner__isnull=True)
        for key in ApiKey.objects.filter(scope, is_active=True, last4=secret[-4:]):
            try:
                if key.secret == secret:
                    return key
            except ValueError:
                continue
        return None
