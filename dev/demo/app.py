"""The app with the demo's commands added, for `make run`: `flask --app dev.demo.app demo ...`
(everything else as `flask --app wsgi`)."""

from billing_app import create_app
from dev.demo import cli

app = create_app()
cli.init_app(app)
