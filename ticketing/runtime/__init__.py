"""How the ticket service's process runs: ``gunicorn.conf.py`` (production server
settings), ``shutdown`` (how a worker stops on a signal), ``http_errors`` (gunicorn's
own refusals in the API's error shape), ``metrics`` (``/metrics``) and ``cli``
(the ``partnerwatch-ticketing`` command)."""
