"""Characters that no name, title or address holds."""

from __future__ import annotations

import re

# C0 controls (NUL, CR, LF, TAB, ...), DEL, the C1 controls, and the Unicode line and
# paragraph separators. A NUL is refused by PostgreSQL's text type and cuts strings short
# in C libraries; a line break in a title or an address ends up in a mail header.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# What multi-line text (a comment, a template) must not hold: the same, but for line
# breaks and tabs.
CONTROL_CHARACTERS_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
