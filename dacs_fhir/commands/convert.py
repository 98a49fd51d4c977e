"""``dacs-fhir convert FILE... [--to fhir|hl7v2] [--out DIR]``: pure mapping, no database."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import DacsError


def _render(report, to: str) -> tuple[str, str]:
    """(text, file suffix) of one report in the requested format."""
    if to == "hl7v2":
        from ..mappers.hl7v2 import to_oru

        return to_oru(report).replace("\r", "\r\n" if sys.stdout.isatty() else "\r"), ".hl7"
    from ..mappers.fhir import to_bundle

    return json.dumps(to_bundle(report), indent=2, ensure_ascii=False) + "\n", ".json"


def run(args) -> int:
    from ..mappers.dicom import parse

    files: list[Path] = []
    for name in args.files:
        p = Path(name)
        files.extend(sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p])
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    elif len(files) > 1:
        print("convert: several inputs need --out DIR", file=sys.stderr)
        return 2
    failed = 0
    for path in files:
        try:
            text, suffix = _render(parse(path), args.to)
        except FileNotFoundError:
            print(f"{path}: rejected: no such file", file=sys.stderr)
            failed += 1
            continue
        except IsADirectoryError:
            continue
        except DacsError as err:
            print(f"{path}: rejected: {err}", file=sys.stderr)
            failed += 1
            continue
        if args.out:
            (Path(args.out) / (path.stem + suffix)).write_text(text, encoding="utf-8", newline="")
        else:
            sys.stdout.write(text)
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser("convert", help="map DICOM dose objects to FHIR Bundles or HL7 v2 ORU^R01 (no database)")
    p.add_argument("files", nargs="+", metavar="FILE", help="DICOM files or folders")
    p.add_argument("--to", choices=("fhir", "hl7v2"), default="fhir", help="output format (default fhir)")
    p.add_argument("--out", metavar="DIR", help="write one file per input into DIR")
    p.set_defaults(func=run)
