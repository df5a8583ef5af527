"""The JSON API: ``partner`` (/api/v1) and ``staff`` (/api/v1/staff) blueprints."""
