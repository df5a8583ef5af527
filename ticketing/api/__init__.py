"""The HTTP side of the ticket service: the ``partner`` (/api/v1) and ``staff``
(/api/v1/staff) blueprints, their ``schemas`` and ``fields``, response ``dumping``,
the ``openapi`` document and its Swagger UI (``docs_page``), cursor ``pagination``,
JSON ``body`` reading and ``health`` (``/healthz``, ``/readyz``, ``/``)."""
