from tests.payments.conftest import *  # noqa: F403
