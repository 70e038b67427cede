//! Provider `lambda` (in progress).
