"""Callback secrets never reach the logs: every handler the settings configure redacts them."""

import logging

import pytest

from modify.logfilters import RedactCallbackTokens


def configured_handlers(name):
    """The handlers a record logged on ``name`` reaches, as LOGGING set them up (not pytest's)."""
    logger = logging.getLogger(name)
    while logger is not None:
        yield from (h for h in logger.handlers if not type(h).__module__.startswith("_pytest"))
        logger = logger.parent if logger.propagate else None


@pytest.mark.parametrize("logger_name", ["django.server", "django.request", "modify.lifecycle"])
def test_callback_tokens_are_redacted_on_every_handler(logger_name):
    handlers = list(configured_handlers(logger_name))
    assert handlers, f"{logger_name} reaches no handler"
    record = logging.getLogger(logger_name).makeRecord(
        logger_name, logging.WARNING, __file__, 1, '"%s" %s', ("POST /callbacks/s3cr3t-T0ken/ HTTP/1.1", 403), None
    )
    for handler in handlers:
        assert any(isinstance(f, RedactCallbackTokens) for f in handler.filters), handler
        assert handler.filter(record)
        line = handler.format(record)
        assert "s3cr3t-T0ken" not in line and "/callbacks/[redacted]/" in line
