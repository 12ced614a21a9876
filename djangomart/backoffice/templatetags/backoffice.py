from typing import Any

from django import template

from djangomart.backoffice.today import Panel, staff_today

register = template.Library()


@register.simple_tag(takes_context=True)
def today_panels(context: dict[str, Any]) -> list[Panel]:
    return staff_today(context["request"].user)
