//! Provider `fly_machines` (in progress).
