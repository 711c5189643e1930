"""Entry points: the ``airgate`` command line and the HTTP server that composes the channels."""
