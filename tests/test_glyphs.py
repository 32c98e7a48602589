"""Every symbol the console shows has a glyph in DejaVu Sans, the font Debian's Chromium falls
back to (issue 22: "⏸" drew an empty box there). A new symbol goes into GLYPHS once checked
with `fc-list ':charset=<hex code point>'` on such a machine."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Punctuation and the badges' symbols, all in DejaVu Sans.
GLYPHS = set("—·→‹›…“”–«»•↑↓▲▼" "✕✓↻■⚡⚠◐⇄‖◷")


@pytest.mark.no_services
def test_every_symbol_on_screen_has_a_glyph_in_debian_chromium():
    used = {}
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("static/css/*.css"),
                 *ROOT.glob("static/js/*.js")]:
        for char in path.read_text(encoding="utf-8"):
            if ord(char) > 127 and char not in GLYPHS:
                used.setdefault(f"{char} U+{ord(char):04X}", path.relative_to(ROOT).as_posix())
    assert used == {}
