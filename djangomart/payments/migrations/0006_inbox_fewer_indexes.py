"""Fewer indexes on the inbox, each one work for every webhook acknowledgement: the
object id is never looked up (the admin's icontains search uses no btree index), and
the session and payment intent ids keep only 0005's plain indexes, without Django's
varchar_pattern_ops twins (nothing uses LIKE on them); so does the event id, whose
primary key stays (its twin, which Django creates for every varchar primary key, is
found by name pattern: its suffix is a hash). Dropping an index is quick."""

from django.db import migrations, models

# The primary key's varchar_pattern_ops index: a random key, so each new event touches
# a random page of it (a full page in the WAL after every checkpoint) for nothing.
DROP_ID_LIKE = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT indexname FROM pg_indexes
                WHERE tablename = 'payments_stripeevent'
                  AND indexname LIKE 'payments\\_stripeevent\\_id\\_%like'
    LOOP
        EXECUTE format('DROP INDEX %I', name);
    END LOOP;
END
$$;
"""
CREATE_ID_LIKE = (
    "CREATE INDEX payments_stripeevent_id_like ON payments_stripeevent (id varchar_pattern_ops)"
)


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0005_stripeevent_due_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='stripeevent',
            name='checkout_session_id',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AlterField(
            model_name='stripeevent',
            name='object_id',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AlterField(
            model_name='stripeevent',
            name='payment_intent_id',
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.RunSQL(DROP_ID_LIKE, CREATE_ID_LIKE),
    ]
