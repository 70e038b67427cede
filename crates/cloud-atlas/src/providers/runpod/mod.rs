//! Provider `runpod` (in progress).
