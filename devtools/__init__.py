"""Development tooling behind `make run` and `make test`. Never imported by djangomart."""
