from modify import backend


def provider(request):
    """Lets every page say whether results come from the sandbox."""
    return {"provider_is_sandbox": backend.uses_sandbox()}
