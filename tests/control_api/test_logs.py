"""JSON log lines of the control API."""

from __future__ import annotations

import json
import logging

from livery_control_api.logs import JsonFormatter


def format_record(message: str, **extra) -> dict:
    record = logging.makeLogRecord({"name": "livery.test", "levelname": "INFO", "msg": message, **extra})
    return json.loads(JsonFormatter().format(record))


def test_log_line_carries_extra_fields():
    line = format_record("GET /healthz 200", route="/healthz", status=200)

    assert line["message"] == "GET /healthz 200"
    assert line["route"] == "/healthz"
    assert line["status"] == 200
    assert line["level"] == "INFO"


def test_secret_named_fields_are_redacted():
    line = format_record("signed in", password="hunter2 hunter2", api_key="lvk_abc", usage_token="t")

    assert line["password"] == "[redacted]"
    assert line["api_key"] == "[redacted]"
    assert line["usage_token"] == "[redacted]"
    assert "hunter2" not in json.dumps(line)
