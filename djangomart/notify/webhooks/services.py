from djangomart.notify.models import OutboxEvent


def deliveries_for_event(event: OutboxEvent) -> None:
    """Queues one delivery of `event` to each enabled endpoint that listens to its type
    (in its transaction)."""
