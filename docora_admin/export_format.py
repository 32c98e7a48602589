"""Rows of a list as CSV or JSON Lines, produced line by line for a streamed response.

CSV cells are defused against formula injection (OWASP "CSV Injection"): a text cell starting
with = + - @ (or TAB / CR, which some spreadsheets skip before reading a formula) gets a leading
apostrophe, so a spreadsheet shows it as text instead of evaluating it. Error texts and app
names come from client apps: a `=HYPERLINK(...)` there must stay text. (defusedcsv does the
same but leaves the TAB / CR prefixes alone, hence these few lines.)
"""
import csv
import io
import json

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse(value):
    """A text value safe to open in a spreadsheet; other values unchanged (None → "")."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_lines(records, columns):
    """The header line, then one CSV line per record (a mapping with `columns`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values):
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(columns)
    for record in records:
        yield line([defuse(record.get(name)) for name in columns])


def json_lines(records):
    """One JSON object per line."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False) + "\n"
