"""Carts: a guest's (held by its token) or a customer's."""
