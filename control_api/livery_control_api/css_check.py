"""Find constructs that tenant CSS may not contain, on tinycss2's parsed tokens.

The checks compare the token values the parser decoded (`AtRule.lower_at_keyword`,
`FunctionBlock.lower_name`, `URLToken.value`, `IdentToken.lower_value`), so CSS escapes
such as `@\\69mport` or `expr\\65ssion(` are found as `@import` and `expression(`,
as a browser reads them. The tenant app sanitises the CSS again before serving it.
"""

from __future__ import annotations

import re

import tinycss2
from tinycss2 import ast

MARKUP = "markup ('<', for example '</style>')"
IMPORT = "@import of another stylesheet"
EXPRESSION = "expression(...)"
SCRIPT_URL = "javascript: URLs"
BINDING = "behavior and -moz-binding"
PROBLEM_ORDER = (MARKUP, IMPORT, EXPRESSION, SCRIPT_URL, BINDING)

SCRIPT_SCHEMES = ("javascript", "vbscript")
BINDING_NAMES = frozenset({"behavior", "-ms-behavior", "-moz-binding"})
URL_FUNCTIONS = frozenset({"url", "src", "image", "image-set", "-webkit-image-set"})
_RAW_SCRIPT_URL = re.compile(r"(javascript|vbscript)\s*:", re.IGNORECASE)


def custom_css_problems(css: str) -> list[str]:
    """Return the rejected constructs found in `css`, named for the error message, in a fixed order."""
    problems: set[str] = set()
    if "<" in css:
        # Rejected anywhere, strings and comments included, so nothing can close a <style> element.
        problems.add(MARKUP)
    if _RAW_SCRIPT_URL.search(css):
        # Also on the raw text: an unquoted url() with parentheses, such as url(javascript:alert(1)),
        # is a bad-url token whose value the parser does not keep.
        problems.add(SCRIPT_URL)
    for rule in tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if isinstance(rule, ast.AtRule):
            if rule.lower_at_keyword == "import":
                problems.add(IMPORT)
            _check_tokens(rule.prelude, problems)
            _check_tokens(rule.content or [], problems)
        elif isinstance(rule, ast.QualifiedRule):
            _check_tokens(rule.prelude, problems)
            _check_tokens(rule.content, problems)
    return [name for name in PROBLEM_ORDER if name in problems]


def _check_tokens(tokens: list, problems: set[str]) -> None:
    for token in tokens:
        if isinstance(token, ast.AtKeywordToken) and token.lower_value == "import":
            problems.add(IMPORT)
        elif isinstance(token, ast.IdentToken):
            if token.lower_value.startswith(SCRIPT_SCHEMES):
                problems.add(SCRIPT_URL)
            if token.lower_value in BINDING_NAMES:
                problems.add(BINDING)
        elif isinstance(token, ast.URLToken):
            if _is_script_url(token.value):
                problems.add(SCRIPT_URL)
        elif isinstance(token, ast.FunctionBlock):
            if token.lower_name == "expression":
                problems.add(EXPRESSION)
            if token.lower_name.startswith(SCRIPT_SCHEMES):
                problems.add(SCRIPT_URL)
            if token.lower_name in URL_FUNCTIONS and any(
                isinstance(argument, ast.StringToken) and _is_script_url(argument.value) for argument in token.arguments
            ):
                problems.add(SCRIPT_URL)
            _check_tokens(token.arguments, problems)
        elif isinstance(token, (ast.ParenthesesBlock, ast.SquareBracketsBlock, ast.CurlyBracketsBlock)):
            _check_tokens(token.content, problems)


def _is_script_url(url: str) -> bool:
    # Browsers drop ASCII whitespace and control characters inside a URL's scheme.
    squeezed = "".join(character for character in url if character > " ").lower()
    return squeezed.startswith(tuple(scheme + ":" for scheme in SCRIPT_SCHEMES))
