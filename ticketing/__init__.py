"""partnerwatch ticket service (app factory: ``create_app``)."""
