//! Compiles `proto/` (the V2 gRPC service, Triton's model config, gRPC health) into Rust with
//! protox, a pure-Rust protobuf compiler, so building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for one checkout may be reused by another that
    // shares the target directory, and `env!` would bake in the first one's path.
    let proto = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let descriptors = protox::compile(["grpc_service.proto", "health.proto"], [&proto])?;
    tonic_prost_build::configure()
        // prost's codec, with a check of `ModelInferRequest`s before they are decoded.
        .codec_path("crate::protocol::grpc::codec::CheckedCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
