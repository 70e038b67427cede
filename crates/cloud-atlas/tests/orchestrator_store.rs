//! The public session-store conformance suite on the in-memory and SQLite stores.

use std::sync::Arc;

use cloud_atlas::orchestrator::store::{
    run_store_conformance, MemorySessionStore, SessionStore, SqliteSessionStore,
};

#[tokio::test]
async fn memory_store_conforms() {
    run_store_conformance(&MemorySessionStore::new())
        .await
        .unwrap();
    let shared: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new());
    run_store_conformance(&shared).await.unwrap();
}

#[tokio::test]
async fn sqlite_store_conforms_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("sessions.sqlite");
    let store = SqliteSessionStore::open(&path).unwrap();
    run_store_conformance(&store).await.unwrap();
    // Twice on the same file (the suite cleans up after itself), and from a second handle.
    run_store_conformance(&SqliteSessionStore::open(&path).unwrap())
        .await
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }
}

#[tokio::test]
async fn sqlite_store_is_found_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = cloud_atlas::config::Config::empty(dir.path().join(".atlas"));
    let store = SqliteSessionStore::from_config(&config).unwrap();
    assert_eq!(
        store.path(),
        dir.path()
            .join(".atlas")
            .join(cloud_atlas::orchestrator::store::SESSIONS_DB_FILE)
    );
    run_store_conformance(&store).await.unwrap();
}
