"""Subcommands of ``dacs-fhir``: one module each, discovered by :mod:`dacs_fhir.cli`."""
