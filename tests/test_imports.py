"""What importing a module pulls in, and the shape of the graph: the upload guard, which runs
before any request reaches the service, needs image decoding only, never ingestion
(de-identification, PACS, polars); no cycle; no module too long to hold one job."""

from __future__ import annotations

import json
import subprocess
import sys


def imported_by(module: str) -> set[str]:
    script = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_the_upload_guard_depends_on_imaging_not_on_ingestion() -> None:
    loaded = imported_by("umcl.upload_guard")
    assert {"umcl.imaging.header", "umcl.imaging.images"} <= loaded
    ingestion = {"umcl.ingest.sources", "umcl.ingest.deid", "umcl.ingest.pacs", "spacy", "polars"}
    assert not ingestion & loaded


def test_the_import_graph_of_umcl_has_no_cycle() -> None:
    """Every module of `umcl/` and what it imports (`umcl/imports.py`: also inside functions,
    never under TYPE_CHECKING) form no cycle: each module can be read, and changed, after what
    it builds on."""
    from umcl.imports import PACKAGE, _module_name, imported_modules

    graph = {
        _module_name(path): imported_modules(path) - {_module_name(path)}
        for path in PACKAGE.rglob("*.py")
    }
    cycles, visiting, done = [], [], set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycles.append([*visiting[visiting.index(name) :], name])
            return
        visiting.append(name)
        for imported in sorted(graph.get(name, ())):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


MAX_MODULE_LINES = 600


def test_no_module_of_umcl_is_over_600_lines() -> None:
    """A module past a few hundred lines holds more than one job; split it by job instead."""
    from umcl.imports import PACKAGE

    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
