"""Logging for `gdns serve`: text lines for people, or one JSON object per line for machines.

Everything logs through the standard `logging` module under the `gdns` namespace; this module
only chooses the format. The JSON form carries time, level, logger and message, plus any
`extra=` fields a call gives (the sampled query log gives client, qname, qtype, rcode, ...).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from dnslib import QTYPE

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

# Attributes every LogRecord has: what is left in a record's __dict__ came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

query_log = logging.getLogger("gdns.query")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages and tracebacks are
    escaped by JSON), ASCII only so that any stderr encoding carries it."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def setup(level: str = "info", fmt: str = "text") -> None:
    """Send every log record to stderr in `fmt` ("text" or "json") from `level` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    if fmt == "json":
        # Keep stderr all JSON: warnings and a crash's traceback become records too.
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught


def startup_error(fmt: str, message: str, prefix: bool = True, **fields) -> None:
    """A problem that stops gdns before it serves: `gdns: error: MESSAGE` on stderr (without
    the prefix when `prefix` is false: a zone error names its file), or with `fmt` "json" an
    ERROR record of the `gdns` logger carrying `fields`, so that stderr stays all JSON."""
    if fmt != "json":
        print(("gdns: error: " if prefix else "") + message, file=sys.stderr)
        return
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        setup("info", "json")  # an argument error comes before logging is set up
    logging.getLogger("gdns").error("%s", message, extra=fields)


def _log_uncaught(kind, value, traceback) -> None:
    logging.getLogger("gdns").critical("uncaught exception: %s", value, exc_info=(kind, value, traceback))


def log_query(query, reply: bytes, transport: str, client: tuple, elapsed: float) -> None:
    """One line of the sampled query log (`--query-log-sample`), after the reply is encoded.
    `query` is the decoded Query, or None when the codec answered an error itself."""
    qname = qtype = ecs = None
    if query is not None and hasattr(query, "qname"):
        qname = label_text(query.qname)
        qtype = QTYPE.get(query.qtype, str(query.qtype))
        ecs = str(query.ecs.network) if query.ecs else None
    rcode = RCODES.get(reply[3] & 0xF, str(reply[3] & 0xF))
    answers = int.from_bytes(reply[6:8], "big")
    elapsed_ms = round(elapsed * 1000, 3)
    query_log.info(
        "query from %s %s %s %s %s answers=%d ecs=%s %.3f ms",
        client[0],
        transport,
        qname or "-",
        qtype or "-",
        rcode,
        answers,
        ecs or "-",
        elapsed_ms,
        extra={
            "client": client[0],
            "client_port": client[1] if len(client) > 1 else None,
            "qname": qname,
            "qtype": qtype,
            "rcode": rcode,
            "transport": transport,
            "answers": answers,
            "ecs": ecs,
            "elapsed_ms": elapsed_ms,
        },
    )


def label_text(labels: tuple[bytes, ...]) -> str:
    """A query name as dig writes it: bytes outside printable ASCII, dots and backslashes
    escaped (\\DDD, \\.), so a name can never break a log line."""
    parts = []
    for label in labels:
        text = []
        for byte in label:
            if byte in (0x2E, 0x5C, 0x22):  # . \ "
                text.append("\\" + chr(byte))
            elif 0x21 <= byte <= 0x7E:
                text.append(chr(byte))
            else:
                text.append(f"\\{byte:03d}")
        parts.append("".join(text))
    return ".".join(parts) + "."
