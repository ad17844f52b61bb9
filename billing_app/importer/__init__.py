"""The `flask usage import` command's importer: the format (`schema`), its validation before
anything is written (`validation`), and the writing in one transaction (`writer`)."""

from billing_app.importer.schema import ANALYZE_AFTER, InvalidImportFile
from billing_app.importer.validation import parse_file
from billing_app.importer.writer import ImportSummary, import_file

__all__ = ["ANALYZE_AFTER", "ImportSummary", "InvalidImportFile", "import_file", "parse_file"]
