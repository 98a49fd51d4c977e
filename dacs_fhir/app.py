"""The web application: ``create_app(pipeline)`` (Flask app factory, called by the composition root)."""
from __future__ import annotations

from flask import Flask


def create_app(pipeline) -> Flask:
    """A Flask app serving the FHIR REST API; its writes go through ``pipeline`` (built by
    :func:`dacs_fhir.composition.build_pipeline`)."""
    from .listeners import fhir_rest
    from .listeners.fhir_rest.backend import Backend

    app = Flask(__name__)
    app.config["DACS_SETTINGS"] = pipeline.settings
    fhir_rest.init_app(app, Backend(pipeline))
    return app
