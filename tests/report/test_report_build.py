"""report.build: the Markdown report holds whatever text a model wrote without breaking."""

import re

from mathlora.report.build import Doc, md_cell


def test_a_completion_cannot_break_or_inject_into_the_markdown_table():
    hostile = "4 | 5 |\n| injected | row |\n<script>alert(1)</script> `code`"
    cell = md_cell(hostile)
    assert "\n" not in cell and "<script>" not in cell and not re.search(r"(?<!\\)\|", cell)
    doc = Doc()
    doc.table(["predicted", "completion"], [["4", hostile]])
    rows = [line for line in doc.md if line.startswith("|")]
    assert len(rows) == 3
    assert len(re.findall(r"(?<!\\)\|", rows[2])) == 3  # the data row keeps its two cells
