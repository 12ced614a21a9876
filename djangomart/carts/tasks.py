"""Background jobs of carts (procrastinate)."""

from procrastinate.contrib.django import app

from djangomart.carts.services import carts_idle_delete


# Daily, off-peak: idle carts are only clutter, never urgent.
@app.periodic(cron="17 3 * * *")
@app.task(name="carts_idle_delete", queue="carts", queueing_lock="carts_idle_delete")
def carts_idle_delete_task(timestamp: int) -> int:
    return carts_idle_delete()
