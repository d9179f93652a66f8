"""django-q2 job functions of the team: one line each over the domain.

The schedule (``team.schedules``) runs ``refresh_credits`` every ``LUMA_CREDITS_REFRESH_MINUTES``.
"""

from team import keys


def refresh_credits():
    return keys.refresh_credits()
