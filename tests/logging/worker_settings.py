"""The test settings with the fleet's own logging (config/settings/base.py), for the processes the tests
in this folder start and read: the test settings keep the test run itself quiet."""

from common.logs import logging_config
from config.settings.test import *  # noqa: F403
from config.settings.test import LOG_FORMAT, env

LOGGING = logging_config(level=env("LOG_LEVEL", default="INFO"), format_name=LOG_FORMAT)
