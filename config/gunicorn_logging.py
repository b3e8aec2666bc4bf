"""gunicorn's own lines (starting, booting a worker, a worker timing out, the access log if it is on) in
the fleet's shape (common/logs.py), on stdout with everything else.

gunicorn gives its `gunicorn.error` and `gunicorn.access` loggers handlers of its own, in a text format,
and stops them from propagating. This logger class (config/gunicorn.conf.py, `logger_class`) applies the
project's LOGGING in the master too (the workers apply it when they load Django) and hands the two loggers'
lines to it instead; a file given as --error-logfile or --access-logfile keeps gunicorn's handler.
`logconfig_dict` could do the same, but it turns the access log on for every request.
"""

import logging.config

from gunicorn import glogging


class Logger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        from django.conf import settings

        logging.config.dictConfig(settings.LOGGING)
        for log, output in ((self.error_log, cfg.errorlog), (self.access_log, cfg.accesslog)):
            if output not in ("-", None):
                continue
            for handler in [handler for handler in log.handlers if getattr(handler, "_gunicorn", False)]:
                log.removeHandler(handler)
            log.propagate = True
