"""Benchmark: DICOM dose object -> FHIR Bundle conversion rate, beside the pydicom floor.

For every input, in one run and on one core:
  floor-read   bare ``dcmread``
  floor-walk   ``dcmread`` plus a walk that touches every element's value (what any
               pydicom-based parser that reads everything pays)
  convert      parse + map + profile-validate + serialise (``dacs-fhir convert``'s work)

Inputs: the vendor corpus (rdsr/ and images/) when present, plus a synthetic
300-event fluoroscopy RDSR and a 30-event CT RDSR, repeated to --total files.

    python bench/convert.py [--total 400] [--corpus ../shared/corpus]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _inputs(corpus: Path) -> list[tuple[str, bytes]]:
    from dacs_fhir.samples import build_ct_sr, build_projection_sr, encode

    files: list[tuple[str, bytes]] = []
    for sub in ("rdsr", "images"):
        for p in sorted((corpus / sub).glob("*.dcm")) if corpus.is_dir() else []:
            files.append((p.name, p.read_bytes()))
    files.append(("synthetic-fluoro-300-events", encode(build_projection_sr(events=300))))
    files.append(("synthetic-ct-30-events", encode(build_ct_sr(events=30))))
    return files


def _walk(ds) -> int:
    n = 0
    for elem in ds.iterall():
        _ = elem.value
        n += 1
    return n


def _convert(data: bytes) -> int:
    from dacs_fhir.mappers.dicom import parse
    from dacs_fhir.mappers.fhir import to_bundle
    from dacs_fhir.profiles import validate_bundle

    bundle = to_bundle(parse(data))
    issues = [i for i in validate_bundle(bundle) if getattr(i, "severity", "error") == "error"]
    if issues:
        raise SystemExit(f"validation failed: {issues[:3]}")
    return len(json.dumps(bundle, ensure_ascii=False))


def _run(label: str, fn, batch: list[tuple[str, bytes]]) -> dict:
    lat = []
    t0 = time.perf_counter()
    for _name, data in batch:
        t = time.perf_counter()
        fn(data)
        lat.append((time.perf_counter() - t) * 1000)
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "label": label,
        "files": len(batch),
        "rate": len(batch) / wall,
        "p50": statistics.median(lat),
        "p95": lat[int(0.95 * (len(lat) - 1))],
        "max": lat[-1],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--total", type=int, default=400, help="files per measured pass (inputs repeated)")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = ap.parse_args(argv)

    import pydicom

    try:  # one core, as the target is per core
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    inputs = _inputs(args.corpus)
    batch = [inputs[i % len(inputs)] for i in range(max(args.total, len(inputs)))]
    for _name, data in inputs:  # warm-up: imports, caches
        _convert(data)

    results = [
        _run("floor-read (dcmread)", lambda d: pydicom.dcmread(io.BytesIO(d)), batch),
        _run("floor-walk (dcmread + every value)", lambda d: _walk(pydicom.dcmread(io.BytesIO(d))), batch),
        _run("convert (parse+map+validate+json)", _convert, batch),
    ]
    vendor = [x for x in batch if not x[0].startswith("synthetic")]
    if vendor:
        results.append(_run("floor-walk, vendor corpus only", lambda d: _walk(pydicom.dcmread(io.BytesIO(d))), vendor))
        results.append(_run("convert, vendor corpus only", _convert, vendor))
    big = [x for x in inputs if x[0] == "synthetic-fluoro-300-events"] * 20
    results.append(_run("convert, 300-event fluoro RDSR only", _convert, big))

    print(f"inputs: {len(inputs)} distinct files ({sum(len(d) for _, d in inputs) / 1e6:.1f} MB), {len(batch)} per pass, 1 core")
    print(f"{'pass':40} {'files/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for r in results:
        print(f"{r['label']:40} {r['rate']:9.1f} {r['p50']:8.2f} {r['p95']:8.2f} {r['max']:8.2f}")
    floor = results[1]["rate"]
    print(f"convert / floor-walk ratio: {results[2]['rate'] / floor:.2f}x")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
