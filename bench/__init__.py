"""`make bench`: the saga's speed measured beside a monolith reference, in one run.

See bench/__main__.py for the phases and bench/report.py for what the results hold."""
