"""The event workers' queue index (payments.inbox._CLAIM_NEXT): only the events still to
be worked on, in the order workers take them; and plain indexes on payment_intent_id
and checkout_session_id to replace the four 0006 drops. Built CONCURRENTLY, outside a transaction, so that the
webhook keeps storing events while a large inbox is indexed."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('payments', '0004_inbox_is_the_queue'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='stripeevent',
            index=models.Index(condition=models.Q(('status__in', ['received', 'failed'])), fields=['next_attempt_at', 'stripe_created'], name='stripeevent_due'),
        ),
        AddIndexConcurrently(
            model_name='stripeevent',
            index=models.Index(fields=['payment_intent_id'], name='stripeevent_payment_intent'),
        ),
        AddIndexConcurrently(
            model_name='stripeevent',
            index=models.Index(fields=['checkout_session_id'], name='stripeevent_checkout_session'),
        ),
    ]
