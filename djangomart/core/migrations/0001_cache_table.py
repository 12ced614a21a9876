# The shared cache's table (settings.CACHES, Django's DatabaseCache), created with the
# schema `manage.py createcachetable` gives it, so that `migrate` alone prepares a fresh
# database and the cache is there whichever backend REDIS_URL picks today.
from django.db import migrations

CREATE = """
CREATE TABLE IF NOT EXISTS djangomart_cache (
    cache_key varchar(255) NOT NULL PRIMARY KEY,
    value text NOT NULL,
    expires timestamp with time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS djangomart_cache_expires ON djangomart_cache (expires);
"""


class Migration(migrations.Migration):
    dependencies = []

    operations = [migrations.RunSQL(CREATE, reverse_sql="DROP TABLE IF EXISTS djangomart_cache")]
