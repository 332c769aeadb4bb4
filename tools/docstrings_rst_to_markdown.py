"""Convert RST markup in the package's docstrings to the markdown the docs site renders.

mkdocstrings renders docstrings as markdown (``tests/test_docs.py`` refuses RST in them). This
rewrites, in docstrings only (module, class, function and attribute docstrings):

* ``:math:`x``` -> ``$x$``; a ``.. math::`` block -> a ``$$ ... $$`` block (rows separated by
  ``\\\\`` become an ``aligned`` environment, left-aligned unless the block aligns on ``&`` itself);
* ``.. code-block:: lang`` -> a fenced code block;
* ``:func:`x```, ``:class:`x```, ... -> ``[`x`][]`` (a cross-reference that mkdocstrings resolves
  where the docstring lives, ``scoped_crossrefs`` in mkdocs.yml), or ``[`x`][functional_optim.y]``
  when that would not find it (a name shadowed by a member of the enclosing class, a name the
  module does not define or import, another display text), or plain code for a name the site does
  not document.

The names the site documents are read from its inventory (``objects.inv`` of a build).

Usage::

    python -m mkdocs build --site-dir /tmp/site
    python tools/docstrings_rst_to_markdown.py --inventory /tmp/site/objects.inv [FILES...]

then check ``ruff check`` (a link is longer than the role: rewrap long lines) and
``mkdocs build --strict``.
"""

from __future__ import annotations

import argparse
import ast
import re
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "functional_optim",
    "functional_optim.transforms",
    "functional_optim.combinators",
    "functional_optim.schedules",
    "functional_optim.adapters",
    "functional_optim.averaging",
    "functional_optim.optimizers",
]
ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):`([^`]+)`")
INLINE_MATH = re.compile(r":math:`([^`]+)`")
DIRECTIVE = re.compile(r"^(\s*)\.\. (math|code-block)::\s*(.*)$")


class Inventory:
    """The documented names (``objects.inv``): name -> URL, and the shortest name of each URL."""

    def __init__(self, path: Path) -> None:
        body = zlib.decompress(path.read_bytes().split(b"\n", 4)[4]).decode()
        self.uri: dict[str, str] = {}
        self.canonical: dict[str, list[str]] = {}
        for line in body.splitlines():
            name, role, prio, uri = line.split(" ")[:4]
            self.uri[name] = uri.replace("$", name)
            if prio == "1" and role != "std:doc":
                self.canonical.setdefault(name.rsplit(".", 1)[-1], []).append(name)
        self.shortest: dict[str, str] = {}
        for name, uri in self.uri.items():
            if uri not in self.shortest or len(name) < len(self.shortest[uri]):
                self.shortest[uri] = name

    def resolve(self, target: str, module: str) -> str | None:
        t = target.strip().rstrip("()").lstrip("~").lstrip(".")
        if t.startswith("functional_optim."):
            candidates = [t]
            t = t[len("functional_optim.") :]
        else:
            parts = module.split(".")
            candidates = [".".join(parts[:i]) + "." + t for i in range(len(parts), 0, -1)]
        candidates += [f"{p}.{t}" for p in PACKAGES]
        for c in candidates:
            if c in self.uri:
                return self.shortest[self.uri[c]]
        found = [f for f in self.canonical.get(t.rsplit(".", 1)[-1], []) if f.endswith("." + t)]
        return self.shortest[self.uri[found[0]]] if len(found) == 1 else None


def _top_level_breaks(tex: str) -> tuple[bool, list[int]]:
    """Whether ``tex`` has a top-level ``&``, and the positions just after its top-level ``\\\\``."""
    depth, i, amp, breaks = 0, 0, False, []
    while i < len(tex):
        if tex.startswith("\\begin{", i) or tex.startswith("\\end{", i):
            depth += 1 if tex.startswith("\\begin{", i) else -1
            i = tex.index("}", i) + 1
        elif tex.startswith("\\\\", i):
            if depth == 0:
                breaks.append(i + 2)
            i += 2
        elif tex[i] == "\\":
            i += 2  # an escaped character (\& is a literal ampersand)
        else:
            amp = amp or (tex[i] == "&" and depth == 0)
            i += 1
    return amp, breaks


def _display(lines: list[str], indent: str) -> list[str]:
    body = "\n".join(lines)
    amp, breaks = _top_level_breaks(body)
    aligned = amp or bool(breaks)
    if breaks and not amp:  # left-aligned rows: each row starts with &
        for pos in reversed([0, *breaks]):
            k = pos
            while k < len(body) and body[k] in " \n":
                k += 1
            body = body[:k] + "&" + body[k:]
        lines = body.split("\n")
    out = [indent + "$$"] + ([indent + "\\begin{aligned}"] if aligned else [])
    out += [(indent + line) if line.strip() else "" for line in lines]
    return [*out, *([indent + "\\end{aligned}"] if aligned else []), indent + "$$"]


def convert_blocks(text: str) -> str:
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, kind, rest = m.group(1), m.group(2), m.group(3).strip()
        i += 1
        same_line = kind == "math" and bool(rest)
        block = [rest] if same_line else []
        while i < len(lines):  # the content: lines indented deeper than the directive
            if not lines[i].strip():
                k = i
                while k < len(lines) and not lines[k].strip():
                    k += 1
                deeper = k < len(lines) and len(lines[k]) - len(lines[k].lstrip()) > len(indent)
                if block and deeper:
                    block += [""] * (k - i)
                elif block or not deeper:
                    break
                i = k
                continue
            if len(lines[i]) - len(lines[i].lstrip()) <= len(indent):
                break
            block.append(lines[i])
            i += 1
        content = [b for n, b in enumerate(block) if b.strip() and not (same_line and n == 0)]
        indents = [len(b) - len(b.lstrip()) for b in content]
        common = min(indents, default=0)
        ded = [b if same_line and n == 0 else (b[common:] if b.strip() else "") for n, b in enumerate(block)]
        if out and out[-1].strip():
            out.append("")
        if kind == "math":
            out += _display(ded, indent)
        else:
            fenced = [(indent + d) if d.strip() else "" for d in ded]
            out += [indent + "```" + (rest or "text"), *fenced, indent + "```"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


def convert_roles(text: str, module: str, scope: set[str], shadowed: set[str], inv: Inventory) -> str:
    def repl(m: re.Match[str]) -> str:
        target = display = m.group(1)
        if "<" in target and target.endswith(">"):  # :func:`text <target>`
            display, target = target[: target.index("<")].strip(), target[target.index("<") + 1 : -1]
        elif target.startswith("~"):
            display = target.lstrip("~").split(".")[-1]
        display = display.lstrip(".")
        if re.fullmatch(r"functional_optim\.[a-z]\w*", display):
            display = "fo." + display.split(".")[1]
        ident = inv.resolve(target, module)
        if ident is None:
            return f"`{display}`"
        name = target.lstrip("~").lstrip(".").rstrip("()")
        if display == name and name in scope and name not in shadowed:
            return f"[`{display}`][]"
        return f"[`{display}`][{ident}]"

    return ROLE.sub(repl, text)


def _module_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _class_members(cls: ast.ClassDef) -> set[str]:
    members = set()
    for node in cls.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            members.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members.add(node.target.id)
        elif isinstance(node, ast.Assign):
            members |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return members


def convert_file(path: Path, inv: Inventory) -> bool:
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src)
    module = ".".join(path.resolve().relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    scope = _module_names(tree)
    data = src.encode("utf-8")  # ast's column offsets count UTF-8 bytes
    offsets = [0]
    for line in data.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    edits = []

    def visit(node: ast.AST, shadowed: set[str]) -> None:
        if isinstance(node, ast.ClassDef):
            shadowed = shadowed | _class_members(node)
        for child in ast.iter_child_nodes(node):
            value = child.value if isinstance(child, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and child.end_lineno:
                a = offsets[child.lineno - 1] + child.col_offset
                b = offsets[child.end_lineno - 1] + (child.end_col_offset or 0)
                literal = data[a:b].decode("utf-8")
                q = re.match(r'^([A-Za-z]*)("""|\'\'\')', literal)
                if q and literal.endswith(q.group(2)):
                    body = literal[len(q.group(0)) : -3]
                    new = convert_blocks(body)
                    new = INLINE_MATH.sub(lambda mm: f"${mm.group(1)}$", new)
                    new = convert_roles(new, module, scope, shadowed, inv)
                    if new != body:
                        edits.append((a, b, (q.group(0) + new + q.group(2)).encode("utf-8")))
            visit(child, shadowed)

    visit(tree, set())
    for a, b, new in sorted(edits, reverse=True):
        data = data[:a] + new + data[b:]
    if edits:
        path.write_bytes(data)
    return bool(edits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", type=Path, required=True, help="objects.inv of a site build")
    parser.add_argument("files", nargs="*", type=Path, help="default: every module of the package")
    args = parser.parse_args()
    inv = Inventory(args.inventory)
    files = args.files or sorted((ROOT / "functional_optim").rglob("*.py"))
    changed = [p for p in files if convert_file(p, inv)]
    print(f"{len(changed)} file(s) changed", *changed, sep="\n")


if __name__ == "__main__":
    main()
