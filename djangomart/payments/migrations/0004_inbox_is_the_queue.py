"""The inbox becomes the workers' queue (payments.inbox): each event carries when it is
due (`next_attempt_at`, with a partial index over the events still to be worked on, in
the order workers take them),
and a trigger NOTIFYs the workers whenever an event becomes `received` (stored,
requeued or replayed), delivered when that transaction commits.

Events already `received` or `failed` are due at once: workers take them over from
the procrastinate jobs queued for them, which still run and find them processed."""

import django.utils.timezone
from django.db import migrations, models

# One notification per transaction at most: PostgreSQL folds identical ones.
NOTIFY = """
CREATE FUNCTION payments_stripeevent_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('djangomart_stripe_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER stripeevent_notify
    AFTER INSERT OR UPDATE OF status, next_attempt_at ON payments_stripeevent
    FOR EACH ROW WHEN (NEW.status = 'received')
    EXECUTE FUNCTION payments_stripeevent_notify();
"""

NOTIFY_DROP = """
DROP TRIGGER stripeevent_notify ON payments_stripeevent;
DROP FUNCTION payments_stripeevent_notify();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0004_money_back'),
        ('payments', '0003_process_ignored_money_back_events'),
    ]

    operations = [
        migrations.AddField(
            model_name='stripeevent',
            name='next_attempt_at',
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddIndex(
            model_name='stripeevent',
            index=models.Index(condition=models.Q(('status__in', ['received', 'failed'])), fields=['next_attempt_at', 'stripe_created'], name='stripeevent_due'),
        ),
        migrations.RunSQL(NOTIFY, NOTIFY_DROP),
    ]
