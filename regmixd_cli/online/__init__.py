"""Online control: one decision from an observed loss, following a log, its state file."""
