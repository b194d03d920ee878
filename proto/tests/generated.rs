//! Keeps `src/gen/` equal to what tonic-prost-build generates from `proto/` (messages, and
//! client and server code for services).

use std::path::Path;

use prost::Message;

#[test]
fn generated_code_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(
        [
            root.join("proto/meshgate/v1/tickets.proto"),
            root.join("proto/meshgate/v1/catalog.proto"),
            root.join("proto/arrow/flight/protocol/flight_service.proto"),
        ],
        [root.join("proto")],
    )
    .expect("the .proto files compile");
    // The descriptor set served by gRPC reflection: every file, imports included.
    let descriptors = fds.encode_to_vec();
    let out = tempfile::tempdir().expect("temp dir");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .out_dir(out.path())
        .compile_fds(fds)
        .expect("tonic-prost-build generates code");
    let fresh = std::fs::read(out.path().join("meshgate.v1.rs")).expect("generated file");
    for (name, fresh) in [
        ("meshgate.v1.rs", fresh),
        ("descriptor_set.bin", descriptors),
    ] {
        let checked_in_path = root.join("src/gen").join(name);
        if std::env::var_os("MESHGATE_REGEN").is_some() {
            std::fs::write(&checked_in_path, &fresh).expect("write generated file");
        }
        let checked_in = std::fs::read(&checked_in_path).unwrap_or_default();
        assert!(
            checked_in == fresh,
            "proto/src/gen/{name} is out of date: run `MESHGATE_REGEN=1 cargo test -p meshgate-proto`"
        );
    }
}
