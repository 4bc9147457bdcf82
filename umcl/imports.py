"""Which of the project's source files a module runs: the static import closure within `umcl`.

One answer serves two readers: the resume fingerprint (`umcl/training/checkpoint.py`: a
checkpoint of other training code is not resumed) and the test that holds `dvc.yaml`'s stage
dependencies to the code each stage really imports (`tests/test_dvc_deps.py`).

Every `import umcl…` / `from umcl… import …` counts, also inside functions (the CLI and the
service import lazily) — except under `if TYPE_CHECKING:`, which never runs. A package's
`__init__.py` counts when a name is imported from the package itself
(`from umcl.ingest.deid import scrub`); the parents Python also runs on the way to a submodule do
not (ours define names only, and `dvc.yaml` lists the folders whose `__init__` does work).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT_NAME = PACKAGE.name


def module_file(name: str) -> Path | None:
    """The file of module `name` ("umcl.imaging.header"), None when it is not one of ours."""
    parts = name.split(".")
    if parts[0] != ROOT_NAME:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.append(ast.Module(body=child.orelse, type_ignores=[]))  # `else:` runs
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            stack.append(child)


def imported_modules(path: Path, node: ast.AST | None = None) -> set[str]:
    """The project modules that `path` (or one `node` of it, e.g. a function) imports."""
    tree = node if node is not None else ast.parse(path.read_text(), filename=str(path))
    package = (
        _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    )
    found: set[str] = set()
    for item in _import_nodes(tree):
        if isinstance(item, ast.Import):
            found.update(alias.name for alias in item.names)
            continue
        base = item.module or ""
        if item.level:  # relative: from .x import y
            anchor = package.split(".")[: len(package.split(".")) - (item.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        submodules = {f"{base}.{a.name}" for a in item.names if module_file(f"{base}.{a.name}")}
        found |= submodules  # `from umcl import registry`
        if len(submodules) < len(item.names):  # a name defined in `base` itself
            found.add(base)
    return {name for name in found if module_file(name) is not None}


def source_digest(files: Iterable[Path], root: Path = PACKAGE.parent) -> str:
    """sha256 over each file's path (relative to `root`, the repository) and bytes: a renamed or
    moved file changes it too."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def import_closure(roots: Iterable[str]) -> list[Path]:
    """The files of `roots` (module names) and of every project module they import, directly
    or not; sorted."""
    seen: set[Path] = set()
    pending = [f for f in (module_file(r) for r in roots) if f is not None]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        pending.extend(module_file(name) for name in imported_modules(path))
    return sorted(seen)
