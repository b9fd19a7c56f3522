"""Entry point shared by ``maestro lsp`` and ``python -m maestro.server``."""

from __future__ import annotations

import json
import logging
import os
import sys


class _ParseErrorsInOneLine(logging.Filter):
    """pygls logs a body that is not JSON with its traceback: the client's fault, already
    answered with ParseError, so one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, json.JSONDecodeError):
            record.msg, record.args = f"{record.getMessage()}: not JSON: {exc}", None
            record.exc_info, record.exc_text = None, None
        return True


def main(log_file: str | None = None) -> None:
    """Serve LSP on stdio until the client exits. Logs go to stderr (or ``log_file``)."""
    level = os.environ.get("MAESTRO_LSP_LOG_LEVEL", "INFO").upper()
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    from maestro.redaction import RedactingFormatter

    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ParseErrorsInOneLine())
    # force: the CLI's own stderr handler is replaced by this one
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("pygls").setLevel(os.environ.get("MAESTRO_LSP_PYGLS_LOG_LEVEL", "WARNING"))
    dump = os.environ.get("MAESTRO_LSP_STACKS")
    if dump:  # debugging aid: `kill -USR1 <pid>` writes every thread's stack there
        import faulthandler
        import signal

        faulthandler.register(signal.SIGUSR1, file=open(dump, "a"), all_threads=True)  # noqa: SIM115
    import gc

    from maestro.server.server import create_server

    server = create_server()
    # Everything imported so far (lsprotocol's classes, pydantic, pygls) lives as long as the
    # process: out of the collector's sight, the full collections that a large answer's rows
    # trigger do not walk it, so they do not pause requests.
    gc.freeze()
    server.start_io()
