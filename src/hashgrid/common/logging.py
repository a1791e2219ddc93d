"""structlog set-up: readable lines on a terminal, one JSON object per line anywhere else."""

import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog and the standard library's root logger once per process."""
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.types.Processor = structlog.dev.ConsoleRenderer()
    factory: Callable[..., Any] = structlog.PrintLoggerFactory(sys.stderr)
    binary = getattr(sys.stderr, "buffer", None)
    if use_json and binary is not None:
        # orjson renders bytes written straight to stderr: a few µs a line, which counts for
        # the gateway's line per request. The standard library's json is several times slower.
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(binary)
    elif use_json:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # One line per HTTP call to the control plane is noise; failures are logged by the callers.
    logging.getLogger("httpx").setLevel(logging.WARNING)
