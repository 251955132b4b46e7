/work/main/guest-sdk/abi/target/debug/deps/rmqtt_kafka_transform_abi-6e22d9a4f4f4ad18.d: src/lib.rs src/config.rs src/input.rs src/output.rs src/wire.rs

/work/main/guest-sdk/abi/target/debug/deps/rmqtt_kafka_transform_abi-6e22d9a4f4f4ad18: src/lib.rs src/config.rs src/input.rs src/output.rs src/wire.rs

src/lib.rs:
src/config.rs:
src/input.rs:
src/output.rs:
src/wire.rs:
