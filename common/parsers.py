"""Request parsers of the API (its own module: DRF imports it while it builds its views)."""

import json

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that bad input is a parse error, never a 500: a body nested too deeply for
    Python's json module (a RecursionError), or a string holding a lone surrogate (`"\\ud800"`: valid JSON
    grammar, but not Unicode text, so it cannot be encoded as UTF-8 to be hashed, stored or answered)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            as_text = json.dumps(data, ensure_ascii=False)  # every string, keys too, in one C pass
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply.") from None
        try:
            as_text.encode()
        except UnicodeEncodeError:
            raise exceptions.ParseError(
                "JSON parse error - a string holds a lone surrogate, which is not Unicode text."
            ) from None
        return data
