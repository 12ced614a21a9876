"""Liveness and readiness probes for load balancers and orchestrators."""

import logging

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers. Touches nothing else, so a database outage does not
    make an orchestrator restart healthy web processes."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: the database answers and every migration is applied."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        loader = MigrationExecutor(connection).loader
        # Every known migration, not just the plan to the leaves: a plan skips an
        # unapplied migration whose descendants are recorded as applied.
        unapplied = set(loader.graph.nodes) - set(loader.applied_migrations or {})
    except DatabaseError as exc:
        logger.warning("readiness: database unreachable", extra={"error": str(exc)})
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    if unapplied:
        return JsonResponse(
            {"status": "unavailable", "database": "ok", "unapplied_migrations": len(unapplied)},
            status=503,
        )
    return JsonResponse({"status": "ok", "database": "ok", "unapplied_migrations": 0})
