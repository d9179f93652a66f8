"""Prompt checks shared by the studio form and the sandbox: the provider takes English only."""

import unicodedata

MAX_PROMPT_LENGTH = 2000


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
    if len(foreign) > len(letters) * 0.1:
        return "The prompt must be in English: the provider only understands English prompts."
    return None
