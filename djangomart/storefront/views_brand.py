from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from djangomart.storefront.models import BrandSettings


@require_safe
def logo(request: HttpRequest) -> HttpResponse:
    """The logo uploaded in the admin. Its URL carries a version (brand.py), so it may
    be cached for a year; nosniff and a CSP keep it an image, whatever its bytes."""
    row = BrandSettings.objects.filter(pk=1).values("logo", "logo_content_type").first()
    if row is None or not row["logo_content_type"]:
        raise Http404("No logo.")
    response = HttpResponse(bytes(row["logo"]), content_type=row["logo_content_type"])
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'"
    return response
