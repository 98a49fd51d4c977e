"""The web application's composition root: ``create_app(settings, store, pipeline)`` (Flask app factory)."""
from __future__ import annotations

from typing import Optional

from flask import Flask

from .config import Settings


def create_app(settings: Optional[Settings] = None, store=None, pipeline=None) -> Flask:
    """A Flask app serving the FHIR REST API; its writes go through ``pipeline`` (by default one built
    on ``store``, or on a new store for ``settings``)."""
    from .listeners import fhir_rest
    from .listeners.fhir_rest.backend import Backend

    if pipeline is None:
        from .pipeline import Pipeline

        pipeline = Pipeline(settings or Settings.from_env(), store=store)
    app = Flask(__name__)
    app.config["DACS_SETTINGS"] = pipeline.settings
    fhir_rest.init_app(app, Backend(pipeline))
    return app
