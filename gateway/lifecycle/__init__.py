"""A message's life after Send: its record's state machine, leases, delivery reports, shutdown."""
