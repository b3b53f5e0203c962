# SPDX-License-Identifier: GPL-2.0
"""The virtio-dmm wire constants, read from the one header that defines them.

virtio-dmm-device/include/uapi/linux/virtio_dmm.h is parsed at import
time: every ``#define VIRTIO_DMM_<NAME> <integer expression>`` and every
enumerator named VIRTIO_DMM_* becomes a module attribute without the
prefix (``wire.REQ_PLUG_PAGES``, ``wire.F_HINTS``, ``wire.MAX_HINTS``).
Python code takes request types, feature bits, queue indices, response
codes and sizes from here, never restates them.

Importing fails (ImportError) when a name in NEEDED is missing from the
header, so a renamed constant breaks every user at once, not a test in
the middle of a run.  ``python3 scripts/dmmlib/wire.py`` prints them all.
"""

import ast
import operator
import os
import re

HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "virtio-dmm-device", "include", "uapi",
    "linux", "virtio_dmm.h")
PREFIX = "VIRTIO_DMM_"

# What the Python users take from the header.
NEEDED = ("REQ_UNPLUG_PAGES", "REQ_PLUG_PAGES", "REQ_MOVE_PAGES",
          "HINT_ZERO", "HINT_DUP", "HINT_RANGE_SIZE", "MAX_HINTS")

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub,
        ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv,
        ast.LShift: operator.lshift, ast.RShift: operator.rshift,
        ast.BitOr: operator.or_, ast.BitAnd: operator.and_}


def _eval(node, known):
    """An integer constant expression of C, as Python's ast parsed it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name) and node.id in known:
        return known[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left, known),
                                   _eval(node.right, known))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, known)
    raise ValueError("not an integer constant: %s" % ast.dump(node))


def _value(expr, known):
    """The value of C expression @expr (suffixes U/L dropped, / as //)."""
    expr = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", expr.strip())
    return _eval(ast.parse(expr.replace("/", "//"), mode="eval").body, known)


def _strip_comments(text):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)


def _enumerators(text, known):
    """VIRTIO_DMM_* enumerators of every enum in @text, in order."""
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text):
        nxt = 0
        for item in filter(None, (i.strip() for i in body.split(","))):
            name, _, expr = item.partition("=")
            name = name.strip()
            nxt = _value(expr, known) if expr.strip() else nxt
            known[name] = nxt
            nxt += 1


def parse(path=HEADER):
    """{NAME: value} of the header's VIRTIO_DMM_* integer constants."""
    with open(path) as f:
        text = _strip_comments(f.read())
    known = {}
    for name, expr in re.findall(r"^[ \t]*#[ \t]*define[ \t]+(%s\w+)[ \t]+"
                                 r"(.+?)[ \t]*$" % PREFIX, text, re.M):
        try:
            known[name] = _value(expr, known)
        except (ValueError, SyntaxError):
            pass                # not an integer: a string or a macro
    _enumerators(text, known)
    return {k[len(PREFIX):]: v for k, v in known.items()
            if k.startswith(PREFIX)}


CONSTANTS = parse()
_missing = [n for n in NEEDED if n not in CONSTANTS]
if _missing:
    raise ImportError("%s lacks %s" % (HEADER, ", ".join(
        PREFIX + n for n in _missing)))
globals().update(CONSTANTS)


if __name__ == "__main__":
    for k, v in CONSTANTS.items():
        print("%s%-24s %d" % (PREFIX, k, v))
