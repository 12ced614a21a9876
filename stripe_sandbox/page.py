"""The hosted Checkout page at a session's `url`: plain HTML forms, no JavaScript, so a
browser and a test's HTTP client drive it the same way."""

from html import escape
from typing import Any

from aiohttp import web

from stripe_sandbox import flows
from stripe_sandbox.errors import StripeError
from stripe_sandbox.state import sandbox_of
from stripe_sandbox.store import StripeObject

routes = web.RouteTableDef()

_STYLE = """body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;color:#222}
table{width:100%;border-collapse:collapse}td{padding:.3rem 0}td.r{text-align:right}
.total{font-weight:bold;border-top:1px solid #ccc}.error{color:#b00020}
input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}
button{font-size:1rem;padding:.5rem 1rem;margin:.3rem .3rem .3rem 0}
.note{color:#666;font-size:.9rem}"""


def _money(amount: int, currency: str) -> str:
    # Stripe's own list, kept here because the sandbox never imports djangomart
    # (djangomart.money has the shop's copy).
    zero_decimal = {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
    if currency in zero_decimal:
        return f"{amount} {currency.upper()}"
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"


def _page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=html, content_type="text/html", status=status)


def _session(request: web.Request) -> StripeObject:
    session = sandbox_of(request).store.get("checkout.session", request.match_info["id"])
    if session is None:
        raise web.HTTPNotFound(text="No such Checkout Session.")
    return session


def _success_url(session: StripeObject) -> str:
    return _fill_in(session, "success_url")


def _fill_in(session: StripeObject, key: str) -> str:
    # Stripe fills the {CHECKOUT_SESSION_ID} template into both return URLs.
    return str(session[key]).replace("{CHECKOUT_SESSION_ID}", session["id"])


def _checkout_form(
    request: web.Request, session: StripeObject, error: str = "", status: int = 200
) -> web.Response:
    store = sandbox_of(request).store
    rows = "".join(
        f"<tr><td>{escape(item['description'])} &times; {item['quantity']}</td>"
        f"<td class='r'>{_money(item['amount_total'], item['currency'])}</td></tr>"
        for item in store.private[session["id"]]["line_items"]
    )
    email = escape(session["customer_email"] or "")
    cancel = (
        f"<p><a href='{escape(_fill_in(session, 'cancel_url'))}'>"
        "Cancel and return to the shop</a></p>"
        if session["cancel_url"]
        else ""
    )
    body = f"""
<table>{rows}<tr class='total'><td>Total</td>
<td class='r'>{_money(session["amount_total"], session["currency"])}</td></tr></table>
{f"<p class='error' role='alert'>{escape(error)}</p>" if error else ""}
<form method='post' action='/checkout/pay/{session["id"]}'>
  <label>Email <input name='email' type='email' value='{email}'></label>
  <label>Card number <input name='card_number' inputmode='numeric' autocomplete='cc-number'
    placeholder='4242 4242 4242 4242'></label>
  <button name='action' value='card' type='submit'>Pay</button>
  <button name='action' value='delayed' type='submit'>Pay by bank debit (settles later)</button>
</form>
{cancel}
<p class='note'>Sandbox test cards: 4242424242424242 succeeds, 4000000000000002 is declined,
4000000000009995 has insufficient funds, 4000002500003155 asks for 3-D Secure.</p>"""
    return _page("Stripe Sandbox Checkout", body, status)


def _closed(session: StripeObject) -> web.Response:
    if session["status"] == "complete" and session["success_url"]:
        link = f"<p><a href='{escape(_success_url(session))}'>Return to the shop</a></p>"
        return _page("Payment complete", f"<p>This checkout is complete.</p>{link}", 200)
    return _page("Checkout expired", "<p>This checkout session has expired.</p>", 410)


@routes.get("/checkout/pay/{id}")
async def checkout_page(request: web.Request) -> web.Response:
    session = _session(request)
    if session["status"] != "open":
        return _closed(session)
    return _checkout_form(request, session, request.query.get("error", ""))


@routes.post("/checkout/pay/{id}")
async def checkout_submit(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    if session["status"] != "open":
        return _closed(session)
    form: Any = await request.post()
    action = form.get("action", "card")
    try:
        outcome = flows.session_pay(
            sandbox_of(request).store,
            session,
            flows.Context(),
            card=str(form.get("card_number", "")),
            delayed=action == "delayed",
            email=str(form.get("email", "")) or None,
        )
    except StripeError as exc:
        return _checkout_form(request, session, str(exc), status=402)
    if outcome == "requires_action":
        raise web.HTTPSeeOther(f"/checkout/pay/{session['id']}/authenticate")
    if outcome == "declined":
        intent = sandbox_of(request).store.get("payment_intent", session["payment_intent"])
        message = (intent or {}).get("last_payment_error", {}).get("message", "Declined.")
        return _checkout_form(request, session, message, status=402)
    raise web.HTTPSeeOther(_success_url(session))


@routes.get("/checkout/pay/{id}/authenticate")
async def authenticate_page(request: web.Request) -> web.Response:
    session = _session(request)
    if session["status"] != "open":
        return _closed(session)
    body = f"""<p>Your bank asks you to confirm this payment of
{_money(session["amount_total"], session["currency"])}.</p>
<form method='post' action='/checkout/pay/{session["id"]}/authenticate'>
  <button name='result' value='approve' type='submit'>Complete authentication</button>
  <button name='result' value='fail' type='submit'>Fail authentication</button>
</form>"""
    return _page("3-D Secure", body)


@routes.post("/checkout/pay/{id}/authenticate")
async def authenticate_submit(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    if session["status"] != "open":
        return _closed(session)
    form: Any = await request.post()
    try:
        outcome = flows.session_authenticate(
            sandbox_of(request).store,
            session,
            flows.Context(),
            approve=form.get("result") == "approve",
        )
    except StripeError as exc:
        return _checkout_form(request, session, str(exc), status=402)
    if outcome == "succeeded":
        raise web.HTTPSeeOther(_success_url(session))
    return _checkout_form(request, session, "Authentication failed. Try another card.", status=402)
