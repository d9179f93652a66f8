"""The team's models in the admin: each concern registers its own (imported here for autodiscovery)."""
from team import invitation_admin  # noqa: F401
from team import quota_admin  # noqa: F401
