"""TeX in titles and abstracts, made readable: accents and symbols as Unicode, math as MathML.

Sources keep the authors' TeX: ``Pok\\'emon``, ``30\\%``, ``$\\mathcal{O}(n)$``, ``10^{139}``. Pages
show math as MathML (latex2mathml, then nh3's allow-list: latex2mathml copies ``\\text{...}`` through
unescaped); feeds and mail, which cannot count on MathML, get plain Unicode. The stored text and the
API keep the source's TeX, as Hugging Face does. What is not understood is shown as written.
"""

from __future__ import annotations

import re
from functools import cache

import nh3
from markupsafe import Markup, escape

# Inline math as pandoc reads it: no space inside the dollars, no digit right after the closing one
# (so "costs $5 and $10" stays text); also $$...$$ and \(...\).
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?=[^\s$])((?:\\\$|[^$])+?)(?<=[^\s\\])\$(?!\d)|\\\((.+?)\\\)",
                   re.S)
# Accents (\'e, \"{o}, \c{c}), escaped specials (\%, \&) and macros with at most two arguments.
_MACRO = re.compile(r"\\(?:[`'^\"~=.](?:\{[A-Za-z]?\}|[A-Za-z])|[cvHuk]\{[A-Za-z]\}|[%&$#_{}]"
                    r"|[A-Za-z]+(?:\{[^{}\\]*\}){0,2})")
# Scripts outside math: x^{2}, D^3S, A_{i,t}, x_1; not snake_case.
_SCRIPT = re.compile(r"(?P<mark>[\^_])\{(?P<braced>[^{}\\]*)\}|(?P<sup>\^)(?P<char>[A-Za-z0-9])|(?P<sub>_)(?P<digit>\d)(?!\w)")
_MATH_SCRIPT = re.compile(r"(?P<mark>[\^_])(?:\{(?P<braced>[^{}\\]*)\}|(?P<char>\w))")  # any x_i in math
_TIE = re.compile(r"(?<=\S)~(?=\S)")  # Fig.~3: an unbreakable space (a spaced "~100" means "about")
_HINTS = ("\\", "$", "^", "_", "~")

_SUPER = str.maketrans("0123456789+-=()ni", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ")
_SUB = str.maketrans("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ")

_MATHML_TAGS = {"math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace",
                "msup", "msub", "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover",
                "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "merror", "mfenced"}
_MATHML_ATTRIBUTES = {
    "math": {"display", "xmlns"}, "mi": {"mathvariant"}, "mstyle": {"displaystyle", "scriptlevel"},
    "mo": {"stretchy", "fence", "form", "separator", "lspace", "rspace", "largeop", "movablelimits"},
    "mfrac": {"linethickness"}, "mspace": {"width"}, "mtable": {"columnalign", "rowspacing"},
    "menclose": {"notation"},
}


def to_text(text: str | None) -> str:
    """Plain Unicode: accents and symbols decoded, math as text, scripts as Unicode where they exist."""
    if not text or not any(h in text for h in _HINTS):
        return text or ""
    out, at = [], 0
    for m in _MATH.finditer(text):
        out.append(_text_part(text[at:m.start()], html=False))
        out.append(_math_text(next(g for g in m.groups() if g is not None)))
        at = m.end()
    out.append(_text_part(text[at:], html=False))
    return "".join(out)


def to_html(text: str | None) -> Markup:
    """HTML: escaped text with accents and symbols decoded, <sup>/<sub>, and math as MathML."""
    if not text or not any(h in text for h in _HINTS):
        return escape(text or "")
    out, at, math = [], 0, False
    for m in _MATH.finditer(text):
        out.append(_text_part(text[at:m.start()], html=True))
        source = next(g for g in m.groups() if g is not None)
        rendered = _mathml(source, display=m.group(1) is not None)
        out.append(rendered or str(escape(m.group(0))))
        math = math or rendered is not None
        at = m.end()
    out.append(_text_part(text[at:], html=True))
    html = "".join(out)
    if math:  # latex2mathml's output is not to be trusted as it is
        html = nh3.clean(html, tags=_MATHML_TAGS | {"sup", "sub"}, attributes=_MATHML_ATTRIBUTES,
                         link_rel=None)
    return Markup(html)


def _text_part(text: str, *, html: bool) -> str:
    if not text:
        return ""
    out, at = [], 0
    for m in _SCRIPT.finditer(text):
        out.append(_decoded(text[at:m.start()], html))
        mark, body = _parts(m)
        out.append(_script(mark, _decoded(body, html), html))
        at = m.end()
    out.append(_decoded(text[at:], html))
    return "".join(out)


def _parts(m: re.Match) -> tuple[str, str]:
    if m["mark"]:
        return m["mark"], m["braced"]
    return (m["sup"], m["char"]) if m["sup"] else (m["sub"], m["digit"])


def _script(mark: str, body: str, html: bool) -> str:
    if html:
        tag = "sup" if mark == "^" else "sub"
        return f"<{tag}>{body}</{tag}>"
    table = _SUPER if mark == "^" else _SUB
    if body and all(ord(c) in table for c in body):
        return body.translate(table)
    return mark + (body if len(body) == 1 else f"({body})")


def _decoded(text: str, html: bool) -> str:
    """Known macros as Unicode; unknown ones (an author's own \\titlevariable) kept as written."""
    text = _TIE.sub("\u00a0", _MACRO.sub(lambda m: _macro(m.group(0)), text))
    return str(escape(text)) if html else text


@cache
def _macro(source: str) -> str:
    if len(source) == 2 and source[1] in "%&$#_{}":
        return source[1]
    try:
        decoded = _latex().latex_to_text(source)
    except Exception:  # pylatexenc gives up on some malformed TeX
        return source
    return decoded if decoded.strip() else source


def _math_text(source: str) -> str:
    """Math as text: known macros decoded one by one (pylatexenc on a whole formula drops the space
    after \\log), then scripts, then the grouping braces go."""
    def script(m: re.Match) -> str:
        return _script(m["mark"], m["braced"] if m["braced"] is not None else m["char"], html=False)

    text = _MACRO.sub(lambda m: _macro(m.group(0)), source)
    return _MATH_SCRIPT.sub(script, text).replace("{", "").replace("}", "")


def _mathml(source: str, *, display: bool) -> str | None:
    from latex2mathml.converter import convert

    try:
        return convert(source, display="block" if display else "inline")
    except Exception:  # latex2mathml refuses malformed TeX: the source is shown as written
        return None


@cache
def _latex():  # noqa: ANN202 - pylatexenc builds its tables once, on first use
    from pylatexenc.latex2text import LatexNodes2Text

    return LatexNodes2Text(math_mode="text")
