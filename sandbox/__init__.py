"""A stand-in aggregator (Reloadly Airtime API shape) and SMS gateway sink: `airgate sandbox`."""
