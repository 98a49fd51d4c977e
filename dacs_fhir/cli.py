"""The ``dacs-fhir`` command line (docs/architecture.md §2).

Each subcommand lives in its own module under :mod:`dacs_fhir.commands` and
exposes ``register(subparsers)``; the command's function returns the exit code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import __version__, commands
from .errors import ConfigurationError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dacs-fhir", description="Dose Archiving and Communication System")
    parser.add_argument("--version", action="version", version=f"dacs-fhir {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigurationError as err:
        print(f"dacs-fhir: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
