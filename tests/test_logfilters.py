"""Callback secrets never reach the access log."""

import logging

from modify.logfilters import RedactCallbackTokens


def test_callback_tokens_are_redacted_from_server_log_lines(caplog):
    logger = logging.getLogger("test.server")
    logger.addFilter(RedactCallbackTokens())
    with caplog.at_level(logging.INFO, logger="test.server"):
        logger.info('"%s" %s %s', "POST /callbacks/s3cr3t-T0ken_xyz/ HTTP/1.1", 200, 12)
    assert "s3cr3t-T0ken_xyz" not in caplog.text
    assert "/callbacks/[redacted]/" in caplog.text and "200" in caplog.text
