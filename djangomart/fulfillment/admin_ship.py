"""The order page's Ship action (mounted by orders.admin.OrderAdmin at
`<order>/ship/`): a form with the lines (each defaulting to what is left to ship),
carrier and tracking; services.shipment_create decides. A refusal a human may override
(refunded, disputed) brings the form back with why and a confirmation to tick, with a
reason; that needs `fulfillment.override_shipment`."""

import uuid
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from djangomart.core.errors import DomainError
from djangomart.fulfillment import services
from djangomart.orders.lines import LineRef, LinesInvalid
from djangomart.orders.models import Order, OrderLine

if TYPE_CHECKING:
    from djangomart.orders.admin import OrderAdmin

SHIP_PERMISSION = "fulfillment.add_shipment"
OVERRIDE_PERMISSION = "fulfillment.override_shipment"


class ShipForm(forms.Form):
    """`request_key`, made when the page is first shown, is the shipment's idempotency
    key: submitting the page twice (a double-click, a reload) ships once."""

    carrier = forms.CharField(max_length=services.CARRIER_MAX_LENGTH)
    tracking_number = forms.CharField(
        max_length=services.TRACKING_NUMBER_MAX_LENGTH, required=False
    )
    tracking_url = forms.CharField(
        max_length=services.TRACKING_URL_MAX_LENGTH,
        required=False,
        help_text="An http(s) link where the customer follows the parcel.",
    )
    request_key = forms.UUIDField(widget=forms.HiddenInput)
    # Set once the page asked for a confirmation: the fields below are then on it.
    confirming = forms.BooleanField(widget=forms.HiddenInput, required=False)

    def __init__(
        self, *args: Any, lines: list[OrderLine], confirming: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lines = lines
        for line in lines:
            left = line.quantity_to_ship
            self.fields[f"line_{line.pk}"] = forms.IntegerField(
                min_value=0,
                max_value=line.quantity,
                required=False,
                label=f"{line.sku} ({line.name})",
                help_text=f"{left} of {line.quantity} left to ship.",
            )
            self.initial.setdefault(f"line_{line.pk}", left)
        self.initial.setdefault("request_key", uuid.uuid4())
        if confirming:
            self.initial["confirming"] = True
            self.fields["confirm_override"] = forms.BooleanField(
                label="Ship anyway", help_text="I have read why this is refused."
            )
            self.fields["override_reason"] = forms.CharField(
                max_length=services.OVERRIDE_REASON_MAX_LENGTH,
                widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                help_text="Why, for the order's timeline (with your name).",
            )

    def line_quantities(self) -> list[LineRef]:
        quantities: list[LineRef] = []
        for line in self.lines:
            quantity = self.cleaned_data.get(f"line_{line.pk}") or 0
            if quantity > 0:
                quantities.append((line.pk, quantity))
        return quantities


def ship_view(model_admin: "OrderAdmin", request: HttpRequest, object_id: str) -> HttpResponse:
    order = model_admin._order_for_action(
        request, object_id, lambda req, _order: bool(req.user.has_perm(SHIP_PERMISSION))
    )
    if isinstance(order, HttpResponse):
        return order
    lines = list(order.lines.order_by("pk"))
    data = request.POST if request.method == "POST" else None
    confirming = data is not None and data.get("confirming") in ("True", "true", "on", "1")
    form = ShipForm(data, lines=lines, confirming=confirming)
    intro = _intro(order, confirming)
    if form.is_valid():
        outcome = _ship(model_admin, request, order, form)
        if isinstance(outcome, HttpResponse):
            return outcome
        if isinstance(outcome, services.ShipmentRefused):
            # Overridable: the same page again, saying why, with the confirmation to tick.
            form = ShipForm(
                initial={**form.cleaned_data, "confirming": True}, lines=lines, confirming=True
            )
            intro = (
                f"Shipping is refused: {outcome.message} You may ship anyway: tick "
                "“Ship anyway” and say why; it goes on the order's timeline."
            )
    return model_admin._action_page(
        request,
        order,
        form,
        title="Ship",
        intro=intro,
        submit="Ship",
        applies=_not_applicable(order),
    )


def _ship(
    model_admin: "OrderAdmin", request: HttpRequest, order: Order, form: ShipForm
) -> HttpResponse | services.ShipmentRefused | None:
    """Ships; a redirect to the order when done, the refusal when a confirmation may
    override it, or None (the form shows the error)."""
    user = request.user if isinstance(request.user, User) else None
    cleaned = form.cleaned_data
    may_override = request.user.has_perm(OVERRIDE_PERMISSION)
    override = bool(cleaned.get("confirm_override")) and may_override
    try:
        outcome = services.shipment_create(
            order_id=order.pk,
            lines=form.line_quantities(),
            carrier=cleaned["carrier"],
            tracking_number=cleaned["tracking_number"],
            tracking_url=cleaned["tracking_url"],
            user=user,
            override=override,
            override_reason=cleaned.get("override_reason", ""),
            idempotency_key=f"admin:{cleaned['request_key']}",
        )
    except (LinesInvalid, services.ShipmentInvalid) as exc:
        location = str(exc.extra["details"][0]["location"])
        form.add_error(location if location in form.fields else None, exc.message)
        if location == "lines":
            form.add_error(None, "Enter a quantity for at least one line.")
        return None
    except services.ShipmentRefused as exc:
        if exc.overridable and may_override and not override:
            return exc
        if exc.overridable and not may_override:
            messages.error(
                request,
                f"{exc.message} Shipping it anyway needs the permission “Can ship an order "
                "that is refunded, disputed or lost a dispute”.",
            )
        else:
            messages.error(request, exc.message)
        return None
    except services.IdempotencyKeyReused:
        messages.error(
            request,
            "This form was already used for another shipment of this order; nothing was "
            "shipped now. Open the Ship page again for a new shipment.",
        )
        return None
    except DomainError as exc:
        messages.error(request, exc.message)
        return None
    order.refresh_from_db()
    if not outcome.created:
        text = "This shipment was already recorded (the form was sent twice)."
    else:
        text = f"Shipped with {outcome.shipment.carrier}."
    messages.success(request, f"{text} The order is {order.fulfillment_status}.")
    return HttpResponseRedirect(model_admin._url("change", quote(order.pk)))


def _intro(order: Order, confirming: bool) -> str:
    intro = (
        "Enter what is in the parcel (each line defaults to what is left to ship; 0 leaves "
        "a line out). The customer and the shop's systems are told, with the tracking "
        "link; once every unit has shipped the order is fulfilled."
    )
    refusals = [r for r in services.shipment_refusals(order) if r.overridable]
    if refusals and not confirming:
        intro += " Note: " + " ".join(r.message for r in refusals)
    if confirming:
        intro += " Tick “Ship anyway” to ship despite what was refused."
    return intro


def _not_applicable(order: Order) -> str | None:
    blocking = [r for r in services.shipment_refusals(order) if not r.overridable]
    return blocking[0].message if blocking else None
