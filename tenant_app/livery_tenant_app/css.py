"""Sanitise a tenant's custom CSS with a real CSS parser (tinycss2).

The sanitiser keeps style rules, `@media`, `@supports`, `@keyframes` and
`@font-face`. It removes everything that could load outside code or break out
of a stylesheet: `@import` and other at-rules, `expression(...)`, `behavior`,
`-moz-binding`, and any `url()` that is not an `https://` URL or a same-origin
path. Whatever survives is serialised again by tinycss2 and
every `<` is escaped, so the output can never close a `<style>` element.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import tinycss2
from tinycss2 import ast

BLOCK_AT_RULES = {"media", "supports"}
KEYFRAMES_AT_RULES = {"keyframes", "-webkit-keyframes"}
DANGEROUS_FUNCTIONS = {"expression", "javascript", "-moz-binding"}
DANGEROUS_PROPERTIES = {"behavior", "-moz-binding", "-ms-behavior"}
URL_FUNCTIONS = {"url", "image", "image-set", "-webkit-image-set", "src"}


@dataclass
class SanitisedCss:
    """The CSS that is safe to serve, and one message per part that was removed."""

    css: str
    removed: list[str] = field(default_factory=list)


def sanitise_css(text: str) -> SanitisedCss:
    """Return `text` with every dangerous part removed, and a message for each removal."""
    removed: list[str] = []
    rules = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
    kept = _sanitise_rules(rules, removed)
    css = "\n".join(kept)
    # `<` is only valid inside CSS strings, where the escape means the same
    # character; escaping it everywhere keeps `</style` out of the output.
    css = css.replace("<", "\\3c ")
    return SanitisedCss(css=css, removed=removed)


def _sanitise_rules(rules: list, removed: list[str]) -> list[str]:
    kept: list[str] = []
    for rule in rules:
        if isinstance(rule, ast.QualifiedRule):
            serialised = _sanitise_style_rule(rule, removed)
        elif isinstance(rule, ast.AtRule):
            serialised = _sanitise_at_rule(rule, removed)
        elif isinstance(rule, ast.ParseError):
            removed.append(f"line {rule.source_line}: removed invalid CSS ({rule.message})")
            serialised = None
        else:
            serialised = None
        if serialised is not None:
            kept.append(serialised)
    return kept


def _sanitise_style_rule(rule: ast.QualifiedRule, removed: list[str]) -> str | None:
    if _has_literal_angle_bracket(rule.prelude):
        removed.append(f"line {rule.source_line}: removed a rule whose selector contains '<'")
        return None
    declarations = _sanitise_declarations(rule.content, removed)
    selector = tinycss2.serialize(rule.prelude).strip()
    return f"{selector} {{ {declarations} }}"


def _sanitise_at_rule(rule: ast.AtRule, removed: list[str]) -> str | None:
    name = rule.lower_at_keyword
    prelude = tinycss2.serialize(rule.prelude).strip()
    if rule.content is None or name not in BLOCK_AT_RULES | KEYFRAMES_AT_RULES | {"font-face"}:
        removed.append(f"line {rule.source_line}: removed @{name}, which custom CSS may not use")
        return None
    if _has_literal_angle_bracket(rule.prelude) or _find_dangerous_value(rule.prelude) is not None:
        removed.append(f"line {rule.source_line}: removed @{name} with an unsafe condition")
        return None

    if name == "font-face":
        body = _sanitise_declarations(rule.content, removed)
    elif name in KEYFRAMES_AT_RULES:
        frames = tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True)
        body = " ".join(_sanitise_rules(frames, removed))
    else:
        nested = tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True)
        body = " ".join(_sanitise_rules(nested, removed))
    return f"@{name} {prelude} {{ {body} }}"


def _sanitise_declarations(content: list | None, removed: list[str]) -> str:
    kept: list[str] = []
    for item in tinycss2.parse_blocks_contents(content or [], skip_comments=True, skip_whitespace=True):
        if isinstance(item, ast.ParseError):
            removed.append(f"line {item.source_line}: removed invalid declaration ({item.message})")
            continue
        if not isinstance(item, ast.Declaration):
            # Nested rules inside a declaration block are CSS nesting; dropping
            # them keeps the sanitiser's rules in one place.
            removed.append(f"line {item.source_line}: removed a nested rule")
            continue
        if item.lower_name in DANGEROUS_PROPERTIES:
            removed.append(f"line {item.source_line}: removed property {item.lower_name}, which runs code")
            continue
        problem = _find_dangerous_value(item.value)
        if problem is not None:
            removed.append(f"line {item.source_line}: removed {item.lower_name}: {problem}")
            continue
        value = tinycss2.serialize(item.value).strip()
        important = " !important" if item.important else ""
        kept.append(f"{item.name}: {value}{important};")
    return " ".join(kept)


def _find_dangerous_value(tokens: list) -> str | None:
    """Return why a component value list is unsafe, or None. Escapes are already decoded by the parser."""
    for token in tokens:
        if isinstance(token, ast.ParseError):
            return f"invalid value ({token.message})"
        if isinstance(token, ast.URLToken):
            if not is_allowed_url(token.value):
                return f"url({token.value!r}) is not an https:// URL or a same-origin path"
        elif isinstance(token, ast.FunctionBlock):
            if token.lower_name in DANGEROUS_FUNCTIONS:
                return f"{token.lower_name}() runs code"
            if token.lower_name in URL_FUNCTIONS:
                for argument in token.arguments:
                    if isinstance(argument, ast.StringToken) and not is_allowed_url(argument.value):
                        return f"{token.lower_name}({argument.value!r}) is not an https:// URL or a same-origin path"
            nested = _find_dangerous_value(token.arguments)
            if nested is not None:
                return nested
        elif isinstance(token, (ast.ParenthesesBlock, ast.SquareBracketsBlock, ast.CurlyBracketsBlock)):
            nested = _find_dangerous_value(token.content)
            if nested is not None:
                return nested
        elif isinstance(token, ast.IdentToken) and token.lower_value.startswith(("javascript", "vbscript")):
            return f"{token.value} is not allowed"
        elif isinstance(token, ast.LiteralToken) and token.value == "<":
            return "'<' is not allowed"
    return None


def is_allowed_url(url: str) -> bool:
    """Return whether CSS may load `url`: https URLs, same-origin paths and fragments only."""
    url = url.strip()
    lowered = url.lower()
    if lowered.startswith("https://"):
        return True
    if url.startswith("#"):
        return True
    return url.startswith("/") and not url.startswith("//") and "\\" not in url


def _has_literal_angle_bracket(tokens: list) -> bool:
    for token in tokens:
        if isinstance(token, ast.LiteralToken) and token.value in ("<", "<!--"):
            return True
        content = getattr(token, "content", None) or getattr(token, "arguments", None)
        if isinstance(content, list) and _has_literal_angle_bracket(content):
            return True
    return False
