//! Orchestrator for transient per-user GPU sessions (in progress).
