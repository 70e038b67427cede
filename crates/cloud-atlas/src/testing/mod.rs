//! The provider conformance suite (feature `testing`). Filled in by the conformance work.
