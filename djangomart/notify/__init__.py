"""The outbox: every side effect of a fact (an email, an outbound webhook) leaves
through here, written in the fact's own transaction and sent later by a worker.

`notify_enqueue` (services.py) records one `OutboxEvent` per (type, order, cause), once
whatever the number of times the fact is seen, and fans it out to the emails
(notify.emails) and the outbound webhooks (notify.webhooks) it causes. docs/outbox.md.
"""
