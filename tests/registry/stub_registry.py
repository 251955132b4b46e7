"""A stand-in for Confluent Schema Registry, for the tests: Python's standard library only.

No Confluent-compatible registry (Confluent's own, Karapace, Apicurio) installs from this
machine's package sources, so the tests run this one. It stores schemas and answers the
part of the REST API that the plugin and Confluent's Python deserializers call; it checks
no compatibility and normalizes nothing. Whether a record decodes stays up to Confluent's
own client (decode.py), so this stub cannot make a wrongly framed record pass.

    python stub_registry.py --port P [--basic USER:PASS] [--token TOKEN] [--state FILE]
                            [--tls PORT CERT KEY]

With --basic or --token every request needs that Authorization (either, when both are
given). With --state the schemas outlive a restart, as a real registry's (kept in Kafka)
do. With --tls it also serves https on a second port (the same schemas). Prints
"listening on P" once bound; logs each request to stderr.

Served: POST /subjects/{s}/versions; GET /subjects, /subjects/{s}/versions,
/subjects/{s}/versions/{v|latest}, /schemas/ids/{id}; and GET /associations/resources/…,
which Confluent's deserializers ask first (their default subject strategy): none here, so
they fall back to the topic's subject. PROTOBUF schemas are served with ?format=serialized
as the base64 FileDescriptorProto, compiled by protoc when registered (one registered in
that form is served as it is in both formats).
"""

import argparse
import base64
import json
import os
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TYPES = ("AVRO", "JSON", "PROTOBUF")
state = {"schemas": [], "subjects": {}}  # schemas[id - 1]; subjects[s][version - 1] = id
lock = threading.Lock()


class Failure(Exception):
    """An answer with a Confluent-style error body."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code = status, code


def file_descriptor(text, refs):
    """The base64 FileDescriptorProto of a PROTOBUF schema: `text` itself if it is one
    already (what Confluent's Python serializer registers), else .proto text compiled by
    protoc with its references' files beside it."""
    try:
        base64.b64decode(text, validate=True)  # .proto text has spaces: never base64
        return text
    except ValueError:
        pass
    with tempfile.TemporaryDirectory() as d:
        for name, ref_text in referenced_files(refs):
            os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
            with open(os.path.join(d, name), "w") as f:
                f.write(ref_text)
        with open(os.path.join(d, "main.proto"), "w") as f:
            f.write(text)
        out = os.path.join(d, "set.pb")
        try:
            subprocess.run(["protoc", "-I", d, "--descriptor_set_out", out, "main.proto"],
                           cwd=d, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise Failure(422, 42201, "protoc is required (scripts/setup.sh build)")
        except subprocess.CalledProcessError as e:
            raise Failure(422, 42201, f"Invalid schema: {e.stderr.strip()}")
        with open(out, "rb") as f:
            data = f.read()
    # Without --include_imports the FileDescriptorSet holds main.proto alone: field 1's
    # tag, its length (a varint), then the FileDescriptorProto to the end.
    i = 1
    while data[i] & 0x80:
        i += 1
    return base64.b64encode(data[i + 1:]).decode()


def referenced_files(refs):
    """(file name, schema text) of each reference, and of the ones they reference."""
    for ref in refs:
        try:
            sid = state["subjects"][ref["subject"]][ref["version"] - 1]
        except (KeyError, IndexError, TypeError):
            raise Failure(422, 42201, f"Invalid schema: unknown reference {ref}")
        schema = state["schemas"][sid - 1]
        yield ref["name"], schema["schema"]
        yield from referenced_files(schema["references"])


def register(subject, body):
    schema_type = body.get("schemaType", "AVRO")
    text, refs = body.get("schema"), body.get("references") or []
    if schema_type not in TYPES or not isinstance(text, str):
        raise Failure(422, 42201, "Invalid schema")
    entry = {"schema": text, "schemaType": schema_type, "references": refs}
    # A schema already known keeps its id, under whichever subject (as Confluent does).
    sid = next((i + 1 for i, s in enumerate(state["schemas"])
                if {k: s[k] for k in entry} == entry), None)
    if sid is None:
        if schema_type == "PROTOBUF":
            entry["serialized"] = file_descriptor(text, refs)
        else:
            try:
                json.loads(text)
            except ValueError as e:
                raise Failure(422, 42201, f"Invalid schema: {e}")
        state["schemas"].append(entry)
        sid = len(state["schemas"])
    versions = state["subjects"].setdefault(subject, [])
    if sid not in versions:
        versions.append(sid)
    if args.state:  # written whole, then renamed: a kill never leaves half of it
        with open(args.state + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(args.state + ".tmp", args.state)
    return {"id": sid}


def schema_doc(sid, fmt):
    """A schema as Confluent serves it: schemaType left out for AVRO, references if any."""
    if not 0 < sid <= len(state["schemas"]):
        raise Failure(404, 40403, "Schema not found")
    s = state["schemas"][sid - 1]
    serialized = fmt == "serialized" and "serialized" in s
    doc = {"schema": s["serialized"] if serialized else s["schema"]}
    if s["schemaType"] != "AVRO":
        doc["schemaType"] = s["schemaType"]
    if s["references"]:
        doc["references"] = s["references"]
    return doc


def versions_of(subject):
    if subject not in state["subjects"]:
        raise Failure(404, 40401, f"Subject '{subject}' not found.")
    return state["subjects"][subject]


def version_doc(subject, version, fmt):
    versions = versions_of(subject)
    n = len(versions) if version == "latest" else int(version) if version.isdigit() else 0
    if not 0 < n <= len(versions):
        raise Failure(404, 40402, f"Version {version} not found.")
    sid = versions[n - 1]
    return {"subject": subject, "version": n, "id": sid, **schema_doc(sid, fmt)}


def route(method, parts, query, body):
    fmt = query.get("format", [None])[0]
    match method, parts:
        case "POST", ["subjects", subject, "versions"]:
            return register(subject, body)
        case "GET", ["subjects"]:
            return list(state["subjects"])
        case "GET", ["subjects", subject, "versions"]:
            return list(range(1, len(versions_of(subject)) + 1))
        case "GET", ["subjects", subject, "versions", version]:
            return version_doc(subject, version, fmt)
        case "GET", ["schemas", "ids", sid] if sid.isdigit():
            return schema_doc(int(sid), fmt)
        case "GET", ["associations", "resources", _, _]:
            return []
    raise Failure(404, 404, "HTTP 404 Not Found")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections open, as a real registry does

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if self.headers.get("Authorization") not in accepted:
                raise Failure(401, 401, "Unauthorized")
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise Failure(422, 42201, "Invalid schema: the body is not JSON")
            with lock:
                self.answer(200, route(self.command, parts, parse_qs(url.query), body))
        except Failure as e:
            self.answer(e.status, {"error_code": e.code, "message": str(e)})

    do_GET = do_POST = handle_one

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--basic", metavar="USER:PASS")
    parser.add_argument("--token")
    parser.add_argument("--state", metavar="FILE", help="keeps the schemas across restarts")
    parser.add_argument("--tls", nargs=3, metavar=("PORT", "CERT", "KEY"),
                        help="also serve https on PORT, with this certificate and key")
    args = parser.parse_args()
    accepted = [None] if not (args.basic or args.token) else []
    if args.basic:
        accepted.append("Basic " + base64.b64encode(args.basic.encode()).decode())
    if args.token:
        accepted.append("Bearer " + args.token)
    if args.state and os.path.exists(args.state):
        with open(args.state) as f:
            state = json.load(f)
    if args.tls:
        port, cert, key = args.tls
        https = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        https.socket = context.wrap_socket(https.socket, server_side=True)
        threading.Thread(target=https.serve_forever, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on {args.port}", flush=True)
    server.serve_forever()
