from djangomart.notify.models import OutboxEvent


def emails_for_event(event: OutboxEvent) -> None:
    """Queues the emails `event` causes (in its transaction)."""
