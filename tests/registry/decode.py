"""Reads records of a topic and decodes them with Confluent's own deserializers.

The check that the plugin's schema-aware records are what Confluent's clients expect:
each value (and key, with --key-format avro|json|protobuf) goes through the
AvroDeserializer, JSONDeserializer or ProtobufDeserializer of confluent_kafka.schema_registry,
whose SchemaRegistryClient asks --registry.

    python decode.py --bootstrap HOST:PORT --topic T --count N --format avro|json|protobuf
        --registry URL [--key-format avro|json|protobuf|string|none] [--proto-message pkg.Type]
        [--timeout S] [--basic USER:PASS | --token TOKEN]

Prints one JSON line per record, in partition and offset order:
    {"partition", "offset", "key", "value", "headers": {name: UTF-8 text or null}}
or {"partition", "offset", "error"} for a record that does not decode. Exits 1 if N
records have not arrived within --timeout seconds (30 by default).

Values as JSON: Avro's decimals as strings (str(Decimal): "12.30"), its timestamps, dates
and times in ISO 8601 (isoformat(): timestamps are UTC datetimes, "…+00:00"), uuids as
strings, bytes and fixed in base64; Protobuf messages as
MessageToDict(preserving_proto_field_name=True) gives them (64-bit integers as strings,
fields at their default left out).

Protobuf: ProtobufDeserializer parses into a message class handed to it up front, which
a consumer normally has compiled in. Here the class is built from the registry: the
schema the record's id names, and the message its message indexes name (or
--proto-message, as a consumer that knows its type would).

Partitions are assigned, not subscribed: tansu's consumer-group join takes over 15 s.
"""

import argparse
import base64
import datetime
import decimal
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient, dual_schema_id_deserializer
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
from confluent_kafka.schema_registry.common.serde import SchemaId
# How ProtobufDeserializer builds the descriptor pool of a registry schema: private
# helpers, so the version is pinned (scripts/setup.sh).
from confluent_kafka.schema_registry.common.protobuf import PROTOBUF_TYPE, _init_pool, _str_to_proto
from confluent_kafka.schema_registry._sync.protobuf import _resolve_named_schema
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.json_format import MessageToDict
from google.protobuf.message_factory import GetMessageClass


class ProtobufDecoder:
    """ProtobufDeserializer, with the message class it needs built from the registry."""

    def __init__(self, client, message_name):
        self.client, self.message_name = client, message_name
        self.deserializers = {}  # (schema id, message indexes) -> ProtobufDeserializer

    def __call__(self, data, ctx):
        if data is None:
            return None
        schema_id = SchemaId(PROTOBUF_TYPE)
        dual_schema_id_deserializer(data, ctx, schema_id)  # as the deserializer reads it
        key = (schema_id.id, tuple(schema_id.message_indexes))
        if key not in self.deserializers:
            self.deserializers[key] = ProtobufDeserializer(
                self.message_class(schema_id), schema_registry_client=self.client)
        message = self.deserializers[key](data, ctx)
        return MessageToDict(message, preserving_proto_field_name=True)

    def message_class(self, schema_id):
        schema = self.client.get_schema(schema_id.id, fmt="serialized")
        pool = DescriptorPool()
        _init_pool(pool)
        _resolve_named_schema(schema, self.client, pool)
        file = _str_to_proto("default", schema.schema_str)
        pool.Add(file)
        name = self.message_name or indexed_name(file, schema_id.message_indexes)
        return GetMessageClass(pool.FindMessageTypeByName(name))


def indexed_name(file, indexes):
    """The full name of the message that Confluent's message indexes pick in `file`."""
    names, messages = [file.package] if file.package else [], file.message_type
    for i in indexes:
        names.append(messages[i].name)
        messages = messages[i].nested_type
    return ".".join(names)


def decoder(fmt, client, message_name=None):
    """A function of (bytes or None, SerializationContext) for --format/--key-format."""
    if fmt == "avro":
        return AvroDeserializer(client)
    if fmt == "json":
        return JSONDeserializer(None, schema_registry_client=client)
    if fmt == "protobuf":
        return ProtobufDecoder(client, message_name)
    if fmt == "string":
        return lambda data, ctx: None if data is None else data.decode(errors="replace")
    return lambda data, ctx: None


def jsonable(v):
    """What Avro decodes to that JSON has no type for."""
    if isinstance(v, (datetime.date, datetime.time)):  # datetime is a date
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    raise TypeError(f"{type(v).__name__} is not JSON-able")


def fail(message):
    print(f"decode.py: {message}", file=sys.stderr)
    sys.exit(1)


def partitions_of(consumer, topic, deadline):
    while time.monotonic() < deadline:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        time.sleep(0.1)
    fail(f"topic {topic} does not exist")


def seek_to_gaps(consumer, topic, partitions, records):
    """Seeks each partition back to its first stored offset not read: tansu's fetches
    sometimes answer from past the offset asked for, skipping records (so
    tests/kit/src/kafka_reader.rs reads again too)."""
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
        missing = next((o for o in range(low, high) if (p, o) not in records), None)
        if missing is not None:
            try:
                consumer.seek(TopicPartition(topic, p, missing))
            except KafkaException as e:  # not fetching yet: it starts from the beginning
                print(f"decode.py: seek {p}@{missing}: {e}", file=sys.stderr)


def read(args):
    """The first --count records to arrive, by (partition, offset)."""
    deadline = time.monotonic() + args.timeout
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "decode-py",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    partitions = partitions_of(consumer, args.topic, deadline)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    records, last_read = {}, time.monotonic()
    while len(records) < args.count:
        if time.monotonic() > deadline:
            fail(f"{len(records)} of {args.count} records of {args.topic} arrived "
                 f"within {args.timeout} s")
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            records[(msg.partition(), msg.offset())] = msg
            last_read = time.monotonic()
        elif msg is not None:
            print(f"decode.py: {msg.error()}", file=sys.stderr)
        elif time.monotonic() - last_read > 1:
            seek_to_gaps(consumer, args.topic, partitions, records)
            last_read = time.monotonic()
    consumer.close()
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--format", required=True, choices=["avro", "json", "protobuf"])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--key-format", default="string",
                        choices=["avro", "json", "protobuf", "string", "none"])
    parser.add_argument("--proto-message", metavar="PACKAGE.TYPE",
                        help="decode values as this type whatever their message indexes say "
                             "(leave it out to check the indexes)")
    parser.add_argument("--timeout", type=float, default=30)
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--basic", metavar="USER:PASS")
    auth.add_argument("--token")
    args = parser.parse_args()

    conf = {"url": args.registry}
    if args.basic:
        conf["basic.auth.user.info"] = args.basic
    if args.token:
        # The client requires a logical cluster with a static token; the stub ignores it.
        conf |= {"bearer.auth.credentials.source": "STATIC_TOKEN",
                 "bearer.auth.token": args.token, "bearer.auth.logical.cluster": "stub"}
    client = SchemaRegistryClient(conf)
    decode_key = decoder(args.key_format, client)
    decode_value = decoder(args.format, client, args.proto_message)

    for (partition, offset), msg in sorted(read(args).items()):
        headers = {}
        for name, value in msg.headers() or []:
            headers.setdefault(name, None if value is None else value.decode(errors="replace"))
        try:
            key_ctx = SerializationContext(args.topic, MessageField.KEY, msg.headers())
            value_ctx = SerializationContext(args.topic, MessageField.VALUE, msg.headers())
            key, value = decode_key(msg.key(), key_ctx), decode_value(msg.value(), value_ctx)
            line = json.dumps({"partition": partition, "offset": offset, "key": key,
                               "value": value, "headers": headers}, default=jsonable)
        except Exception as e:  # reported per record: the test says which ones must fail
            line = json.dumps({"partition": partition, "offset": offset,
                               "error": f"{type(e).__name__}: {e}"})
        print(line, flush=True)


if __name__ == "__main__":
    main()
