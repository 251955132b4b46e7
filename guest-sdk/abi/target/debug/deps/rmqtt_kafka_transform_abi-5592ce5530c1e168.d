/work/main/guest-sdk/abi/target/debug/deps/rmqtt_kafka_transform_abi-5592ce5530c1e168.d: src/lib.rs src/config.rs src/input.rs src/output.rs src/wire.rs

/work/main/guest-sdk/abi/target/debug/deps/librmqtt_kafka_transform_abi-5592ce5530c1e168.rlib: src/lib.rs src/config.rs src/input.rs src/output.rs src/wire.rs

/work/main/guest-sdk/abi/target/debug/deps/librmqtt_kafka_transform_abi-5592ce5530c1e168.rmeta: src/lib.rs src/config.rs src/input.rs src/output.rs src/wire.rs

src/lib.rs:
src/config.rs:
src/input.rs:
src/output.rs:
src/wire.rs:
