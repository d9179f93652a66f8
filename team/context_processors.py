"""What every page needs to know about the team: for staff, the keys running low on credits.

Both values are lazy: ``low_credit_keys`` is one query and the environment's
key one cache read, made only by a page that shows the banner
(``templates/team/low_credits_banner.html``, included by ``base.html``), not
by every htmx fragment. Members get nothing and cost nothing.
"""

from django.utils.functional import SimpleLazyObject

from team.keys import low_credit_keys, low_environment_credits


def team(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {}
    return {"low_credit_keys": low_credit_keys(), "low_environment_credits": SimpleLazyObject(low_environment_credits)}
