"""The web application's composition root: ``create_app(settings, store, pipeline)`` (Flask app factory)."""
from __future__ import annotations

from typing import Optional

from flask import Flask

from .config import Settings


def create_app(settings: Optional[Settings] = None, store=None, pipeline=None) -> Flask:
    """A Flask app serving the FHIR REST API over ``store`` (by default the pipeline's, or a new one)."""
    from .listeners import fhir_rest
    from .listeners.fhir_rest.backend import Backend

    settings = settings or (pipeline.settings if pipeline is not None else Settings.from_env())
    if store is None:
        if pipeline is not None:
            store = pipeline.store
        else:
            from .store import Store

            store = Store(settings.database_url)
            store.upgrade()
    app = Flask(__name__)
    app.config["DACS_SETTINGS"] = settings
    fhir_rest.init_app(app, Backend(settings, store, pipeline))
    return app
