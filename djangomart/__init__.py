"""DjangoMart: a white-label eCommerce backend with a Stripe Checkout payment engine."""
