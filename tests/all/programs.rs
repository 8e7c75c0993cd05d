//! Loading components: validation errors and the artifact cache.

use burst_host::LoadError;

use crate::support::{guest_path, hello, outputs, run, runtime};

#[test]
fn a_core_module_or_garbage_is_not_a_component() {
    let core_module = b"\0asm\x01\0\0\0";
    assert!(matches!(runtime().load(core_module, None), Err(LoadError::NotAComponent)));
    assert!(matches!(runtime().load(b"hello world", None), Err(LoadError::NotAComponent)));
    assert!(matches!(runtime().load(b"", None), Err(LoadError::NotAComponent)));
}

#[test]
fn a_truncated_component_fails_to_compile() {
    let wasm = std::fs::read(guest_path("hello")).expect("built");
    let result = runtime().load(&wasm[..wasm.len() / 2], None);
    assert!(matches!(result, Err(LoadError::Compile(_))), "got {:?}", result.err());
}

#[test]
fn a_component_of_another_world_is_refused() {
    // The smallest valid component: it exports nothing, so no `work`.
    let empty_component = b"\0asm\x0d\0\x01\0";
    let result = runtime().load(empty_component, None);
    assert!(matches!(result, Err(LoadError::WrongWorld(_))), "got {:?}", result.err());
    // Refused, it leaves no compiled artifact in the cache.
    let cache = crate::controller::TempDir::new("burst-refused-cache");
    let result = runtime().load(empty_component, Some(&cache.0));
    assert!(matches!(result, Err(LoadError::WrongWorld(_))), "got {:?}", result.err());
    let left: Vec<_> = std::fs::read_dir(&cache.0).expect("the cache dir").flatten().map(|e| e.path()).collect();
    assert_eq!(left, Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn the_artifact_cache_serves_a_second_load() {
    let wasm = std::fs::read(guest_path("hello")).expect("built");
    let dir = std::env::temp_dir().join(format!("burst-cache-test-{}", std::process::id()));
    let first = runtime().load(&wasm, Some(&dir)).expect("compiles");
    let artifacts: Vec<_> =
        std::fs::read_dir(&dir).expect("cache dir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(artifacts.len(), 1, "one artifact: {artifacts:?}");
    let name = artifacts[0].to_string_lossy().into_owned();
    assert!(name.starts_with(first.digest()) && name.ends_with(".cwasm"), "{name}");
    let second = runtime().load(&wasm, Some(&dir)).expect("loads from the cache");
    assert_eq!(second.digest(), first.digest());
    let result = run(&second, 3, 3, &serde_json::Value::Null).await;
    assert_eq!(outputs(&result)[2]["sum_of_ids"], 3);
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(hello().digest(), first.digest());
}
