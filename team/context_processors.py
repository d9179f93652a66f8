"""Stub: what every page needs to know about the team (the low-credit banner for staff; being built)."""


def team(request):
    return {}
