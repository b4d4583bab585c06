//! Compiles the `.proto` files with tonic/prost. `$PROTOC` wins when set;
//! otherwise the `protoc` shipped inside `protoc-bin-vendored` is used, so a
//! fresh machine needs no system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    if std::env::var_os("PROTOC").is_none() {
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    }
    let include = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("callbacks_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                PathBuf::from("proto/callbacks/registry/v1/registry.proto"),
                PathBuf::from("proto/callbacks/dispatcher/v1/dispatcher.proto"),
            ],
            &[PathBuf::from("proto"), include],
        )?;
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    Ok(())
}
