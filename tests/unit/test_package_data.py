"""Package data: every file the code reads at run time ships in the wheel and is found through importlib.resources."""
from __future__ import annotations

import ast
import configparser
import json
from fnmatch import fnmatch
from importlib.resources import as_file, files
from pathlib import Path

from dacs_fhir import profiles
from dacs_fhir.store import store

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dacs_fhir"


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    return cfg


def _package_data() -> dict[str, list[str]]:
    section = _setup_cfg()["options.package_data"]
    return {pkg: [p.strip() for p in value.split(",") if p.strip()] for pkg, value in section.items()}


def test_every_folder_with_python_code_is_a_package():
    """setuptools' find: only picks folders with an __init__.py; the migrations were left out of the wheel so."""
    missing = sorted(str(d.relative_to(ROOT)) for d in PACKAGE.rglob("*")
                     if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").is_file())
    assert missing == []


def test_every_data_file_in_the_package_is_named_by_package_data():
    patterns = _package_data()
    unshipped = []
    for path in PACKAGE.rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        owner = path.parent
        while not (owner / "__init__.py").is_file():  # the package the file belongs to
            owner = owner.parent
        name = ".".join(owner.relative_to(ROOT).parts)
        rel = path.relative_to(owner).as_posix()
        if not any(fnmatch(rel, pattern) for pattern in patterns.get(name, ())):
            unshipped.append(str(path.relative_to(ROOT)))
    assert unshipped == []
    assert "py.typed" in patterns["dacs_fhir"] and (PACKAGE / "py.typed").is_file()


def test_profiles_and_ig_at_the_top_of_the_repository_are_the_shipped_ones():
    for name in ("profiles", "ig"):
        top = ROOT / name
        assert top.is_dir(), f"{name}/ is missing at the top of the repository"
        assert top.resolve() == (PACKAGE / "data" / name).resolve(), f"{name}/ is a copy, not the package data"
    assert sorted(p.name for p in (ROOT / "profiles").glob("*.json")) == \
        sorted(p.name for p in profiles.PROFILE_DIR.iterdir() if p.name.endswith(".json"))
    ig = json.loads((files("dacs_fhir") / "data" / "ig" / "ImplementationGuide-dacs-fhir.json").read_text(encoding="utf-8"))
    assert ig["resourceType"] == "ImplementationGuide"


def test_migrations_are_found_as_package_resources():
    with as_file(files(store.MIGRATIONS)) as folder:
        assert (folder / "env.py").is_file() and (folder / "script.py.mako").is_file()
        assert sorted(p.name for p in (folder / "versions").glob("0*.py"))[0].startswith("0001")


def test_no_module_finds_its_data_beside_its_source_file():
    """Data is read with importlib.resources; ``__file__`` only to find the vendor corpus beside a checkout."""
    allowed = {"dacs_fhir/commands/demo.py"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(tree)) and rel not in allowed:
            offenders.append(rel)
    assert offenders == []


def test_demo_looks_for_the_corpus_only_beside_a_checkout(tmp_path, monkeypatch):
    from dacs_fhir.commands import demo

    installed = tmp_path / "site-packages" / "dacs_fhir" / "commands" / "demo.py"
    installed.parent.mkdir(parents=True)
    (tmp_path / "shared" / "corpus").mkdir(parents=True)  # even a corpus in a matching place is not taken
    monkeypatch.setattr(demo, "__file__", str(installed))
    assert demo.corpus_dir() is None
