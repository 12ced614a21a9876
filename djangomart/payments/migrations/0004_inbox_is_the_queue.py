"""The inbox becomes the event workers' queue (payments.inbox): each event carries when
it is due (`next_attempt_at`, defaulting to the database's clock, so that an older
release's INSERT, which does not name the column, still stores a due event during a
deploy), and a trigger NOTIFYs the workers when an event becomes `received` while
nothing else is due (stored, requeued or replayed), delivered when that transaction
commits. Its partial index comes in 0005, built without locking the table.

Events already `received` or `failed` are due at once: the workers take them over from
the procrastinate jobs queued for them, which still run and find them processed.

A NOTIFY serializes the commits of every transaction that sent one (PostgreSQL takes
one lock for them), so in a storm, when events are already due and the workers busy,
none is sent: a busy worker goes on until nothing is due, and an idle one also looks
every second (payments.inbox_worker)."""

import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models

NOTIFY = """
CREATE FUNCTION payments_stripeevent_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM payments_stripeevent
        WHERE status = 'received' AND next_attempt_at <= statement_timestamp()
          AND id <> NEW.id
    ) THEN
        PERFORM pg_notify('djangomart_stripe_events', '');
    END IF;
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
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now),
        ),
        migrations.RunSQL(NOTIFY, NOTIFY_DROP),
    ]
