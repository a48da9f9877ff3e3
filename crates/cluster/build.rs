//! Compiles proto/weir.proto with protox, a protobuf compiler in Rust, so
//! building Weir needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/weir.proto");
    let descriptors = protox::compile(["proto/weir.proto"], ["proto"])?;
    // Batches stay `Bytes` from the HTTP/2 frame to the Arrow buffers.
    tonic_prost_build::configure()
        .bytes(".weir.cluster.v1.Batch.ipc")
        .compile_fds(descriptors)?;
    Ok(())
}
