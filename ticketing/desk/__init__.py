"""The support desk's rules: what can happen to a ticket, with no Flask routes.

``tickets`` (create, change status, triage, messages), ``workflow`` (allowed
status changes), ``sla`` (due times), ``queue`` (the support queue), ``triage``
(priority and category from the keyword rules, then the ``classifier`` model),
``attachments``, ``idempotency``, ``choices`` (the vocabularies), ``settings``
(their sections of ticketing.yml) and ``metrics`` (their counters). The partner
and staff APIs (``ticketing.api``) and the console (``ticketing.console``) call
these same functions.
"""
