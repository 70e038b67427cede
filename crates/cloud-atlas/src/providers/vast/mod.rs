//! Provider `vast` (in progress).
