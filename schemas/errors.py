"""The exception hierarchy: one root, data errors apart from retryable ones."""


class CivicflowError(Exception):
    """Root of every error civicflow raises on purpose. The CLI prints these as one line."""


class ConfigError(CivicflowError):
    """Bad settings, policy file or command-line value: the message says what to fix."""


class InvalidRecord(CivicflowError):
    """A source record that cannot become an event; it goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CalendarUnknown(CivicflowError):
    """A date falls in a year neither chinese-calendar nor the override file knows."""


class RetryableError(CivicflowError):
    """A part is temporarily unavailable; the operation is retried with backoff."""


class SinkUnavailable(RetryableError):
    """ClickHouse cannot be reached; the sink pauses and retries, committing nothing."""


class BrokerUnavailable(RetryableError):
    """Kafka cannot be reached."""
