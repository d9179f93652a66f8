"""The team's models in the admin: each concern registers its own (imported here for autodiscovery)."""
