"""Prompt checks shared by the studio form and the sandbox: the provider takes English only."""

import re
import unicodedata

MAX_PROMPT_LENGTH = 2000
# Everyday words of the languages most often typed in Latin script instead of English,
# none of them an English word too ("die", "a", "and" are left out on purpose).
_FOREIGN_WORDS = frozenset(
    "le la les des du une est avec sur dans pour très et en que de "  # French
    "el los las una del con por para muy sobre y "  # Spanish
    "der das und mit ein eine ist auf im nicht sehr zu "  # German
    "il lo gli della nel sono molto "  # Italian
    "os um uma em com não muito".split()  # Portuguese
)
_ENGLISH_WORDS = frozenset("the a an and of in on with to into make it is as at by from like look turn".split())
# A prompt reads as another language when it has this many of its everyday words,
# and at least twice as many as English ones: "Las Vegas, Los Angeles" is still English.
_FOREIGN_MIN, _FOREIGN_RATIO = 3, 2


def prompt_problem(prompt):
    """A sentence saying what is wrong with ``prompt``, or None when it is fine.

    "English" is checked the way a person would notice: letters outside the
    Latin script (Cyrillic, CJK, Arabic, ...) or a prompt with no letters at all.
    """
    prompt = (prompt or "").strip()
    if not prompt:
        return "Write a prompt that describes the change."
    if len(prompt) > MAX_PROMPT_LENGTH:
        return f"The prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_LENGTH}."
    letters = [ch for ch in prompt if ch.isalpha()]
    if not letters:
        return "The prompt has no words in it."
    foreign = [ch for ch in letters if not unicodedata.name(ch, "").startswith("LATIN")]
    if len(foreign) > len(letters) * 0.1 or _reads_as_another_language(prompt):
        return "The prompt must be in English: the provider only understands English prompts."
    return None


def _reads_as_another_language(prompt):
    """Latin script but not English ("la vidéo en hiver avec neige"), while place names and
    borrowed phrases in an English sentence pass ("Del Mar beach, El Capitan sunrise")."""
    words = re.findall(r"[^\W\d_]+", prompt.lower())
    foreign = sum(word in _FOREIGN_WORDS for word in words)
    english = sum(word in _ENGLISH_WORDS for word in words)
    return foreign >= _FOREIGN_MIN and foreign >= _FOREIGN_RATIO * english
