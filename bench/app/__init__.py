"""The baselines the ingest benchmark compares DjangoMart with, served by the same
gunicorn configuration in the same run (bench.app.wsgi): a bare Django view and a naive
webhook acknowledgement."""
