"""The custom CSS sanitiser: dangerous parts go, the rest survives."""

from __future__ import annotations

import pytest

from livery_tenant_app.css import sanitise_css

HOSTILE_CSS = [
    ("body{color:red}</style><script>alert(1)</script>", "script"),
    ("a{background:url(javascript:alert(1))}", "javascript"),
    ("a{background:url('javascript:alert(1)')}", "javascript"),
    ('a{background:url("jav\\61script:alert(1)")}', "script"),
    ("p{width:expression(alert(1))}", "expression"),
    ("p{width:e\\78pression(alert(1))}", "pression"),
    ("@import url(https://evil.example/x.css);", "@import"),
    ("@import 'https://evil.example/x.css';", "@import"),
    ("a{behavior:url(/x.htc)}", "behavior"),
    ("a{-moz-binding:url(https://evil.example/x.xml#x)}", "binding"),
    ("a{background:url(http://evil.example/a.png)}", "http://"),
    ("a{background-image:image-set('javascript:x' 1x)}", "javascript"),
    ("@media screen{a{background:url(data:text/html,<script>)}}", "data:"),
    ("@\\69mport url(https://evil.example/x.css);", "evil.example"),
    ("a{background:u\\72l(javascript:alert(1))}", "javascript"),
    ("a{background:u\\72l(//evil.example/x.png)}", "evil.example"),
    ("a{background:j\\61vascript:x}", "javascript"),
    ("p{width:expr\\65ssion(alert(1))}", "alert"),
]


@pytest.mark.parametrize(("css", "marker"), HOSTILE_CSS)
def test_hostile_css_is_removed(css: str, marker: str) -> None:
    result = sanitise_css(css)

    assert marker.lower() not in result.css.lower()
    assert "</style" not in result.css.lower()
    assert "<" not in result.css
    assert result.removed, "every removal must be reported"


def test_safe_rules_are_kept() -> None:
    css = (
        "h1 { color: #ff0000; font-weight: bold }\n"
        "@media (max-width: 600px) { .card { padding: 4px } }\n"
        ".hero { background: url(https://cdn.example.com/hero.png) }\n"
        ".logo { background-image: url('/branding/logo.png') }"
    )

    result = sanitise_css(css)

    assert result.removed == []
    assert "color: #ff0000" in result.css
    assert "@media (max-width: 600px)" in result.css
    assert "url(https://cdn.example.com/hero.png)" in result.css
    assert "url(\"/branding/logo.png\")" in result.css or "url('/branding/logo.png')" in result.css


def test_bad_declaration_keeps_its_neighbours() -> None:
    result = sanitise_css("p { width: expression(alert(1)); color: blue }")

    assert result.css == "p { color: blue; }"
    assert result.removed == ["line 1: removed width: expression() runs code"]


def test_angle_bracket_in_string_is_escaped() -> None:
    result = sanitise_css('a::after { content: "</style><b>" }')

    assert "</style" not in result.css
    assert "\\3c /style" in result.css
