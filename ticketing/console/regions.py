"""A page's live regions: each rendered with a version, and the poller's answer.

A page is made of regions (``_*.html`` templates); each region's version is
a digest of its HTML, the page's version a digest of theirs. An open page
polls with its version (``v``) and swaps in the regions whose version changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from flask import jsonify, render_template, request
from flask.typing import ResponseReturnValue

_TOKEN = re.compile(r'name="csrf_token" value="[^"]*"')


def render_regions(
    regions: Mapping[str, str], context: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, str]], str]:
    """Each region's HTML and version (a digest of it), and the page's version."""
    rendered = {}
    for name, template in regions.items():
        html = render_template(template, **context)
        # Form tokens are signed afresh on every render: they are no change.
        stable = _TOKEN.sub("", html)
        rendered[name] = (html, hashlib.sha256(stable.encode()).hexdigest()[:16])
    page = hashlib.sha256("".join(rendered[n][1] for n in sorted(rendered)).encode())
    return rendered, page.hexdigest()[:16]


def changed_regions(regions: Mapping[str, str], context: Mapping[str, Any]) -> ResponseReturnValue:
    """The regions that changed, as JSON, or 204 when none did (``v``: the page's version)."""
    rendered, version = render_regions(regions, context)
    if request.args.get("v") == version:
        return "", 204
    return jsonify(
        version=version,
        regions={name: {"html": html, "version": v} for name, (html, v) in rendered.items()},
    )
