"""Library errors speak the API; the CLI prints the option spelling (``cli=``) — never both mixed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bonesim.errors import BonesimError

ROOT = Path(__file__).resolve().parents[1] / "bonesim"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
COMMAND = re.compile(r"`bonesim [^`]*`")  # a whole command to run, quoted, is one neutral sentence


def _text(node: ast.AST) -> str:
    """The literal parts of a string or f-string expression (placeholders dropped)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    return ""


def _api_messages(tree: ast.AST):
    """(line, text) of every API-side message given to an ``...Error(...)`` or ``...Error.fix(...)``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id.endswith("Error"):
            args = node.args[:1]
        elif isinstance(f, ast.Attribute) and f.attr == "fix":
            args = node.args[:2]
        else:
            continue
        yield from ((a.lineno, _text(a)) for a in args)


def test_library_messages_name_no_command_line_option():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if "cli" in path.relative_to(ROOT).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _api_messages(tree):
            if OPTION.search(COMMAND.sub("", text)):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {text!r}")
    assert not bad, "library errors in CLI spelling (give the API spelling and cli=...):\n" + "\n".join(bad)


def test_the_check_finds_a_mixed_message():
    tree = ast.parse('raise BonesimError(f"{p} exists; pass overwrite=True (--overwrite)")')
    assert [OPTION.search(t) is not None for _, t in _api_messages(tree)] == [True]
    tree = ast.parse('raise BonesimError.fix("x", "pass overwrite=True", "pass --overwrite")')
    assert [OPTION.search(t) is not None for _, t in _api_messages(tree)] == [False, False]


def test_fix_gives_each_level_its_spelling():
    e = BonesimError.fix("out.h5 exists", "pass overwrite=True", "pass --overwrite")
    assert (
        str(e) == "out.h5 exists; pass overwrite=True" and e.cli_message == "out.h5 exists; pass --overwrite"
    )
