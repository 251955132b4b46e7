// The runtime's JavaScript half (docs/javascript.md). It runs once per instance, before
// the user's script, with the runtime's native helpers, and returns `runner`, which the
// runtime calls with the script's `transform` once the script's top-level code has run.
// `msg` is built here, by a constructor: the engine sets its members faster than one
// native call per member would.
(function (decodeUtf8, encodeUtf8, payloadBytes, payloadText) {
  "use strict";

  // The payload stays with the runtime until the script reads it: `payload` makes its
  // Uint8Array on first use, and `text()` reads it without one.
  class Message {
    #call;
    #payload;
    constructor(call, topic, flags, clientId, username, properties, timestamp) {
      this.#call = call;
      this.topic = topic;
      this.qos = flags & 3;
      this.retain = (flags & 4) !== 0;
      this.clientId = clientId;
      this.username = username ?? null;
      this.properties = properties;
      this.timestamp = timestamp;
    }
    get payload() {
      return (this.#payload ??= payloadBytes(this.#call));
    }
    set payload(bytes) {
      this.#payload = bytes;
    }
    // The payload as UTF-8 text; invalid sequences become U+FFFD.
    text() {
      return this.#payload === undefined ? payloadText(this.#call) : decodeUtf8(this.#payload, false);
    }
    // The payload parsed as JSON; throws a SyntaxError when it is not JSON.
    json() {
      return JSON.parse(this.text());
    }
  }

  class TextEncoder {
    get encoding() {
      return "utf-8";
    }
    encode(input = "") {
      return encodeUtf8(String(input));
    }
  }

  class TextDecoder {
    #fatal;
    constructor(label = "utf-8", options = {}) {
      const name = String(label).trim().toLowerCase();
      if (name !== "utf-8" && name !== "utf8" && name !== "unicode-1-1-utf-8") {
        throw new RangeError(`TextDecoder: only utf-8 is supported, not "${label}"`);
      }
      this.#fatal = Boolean(options && options.fatal);
    }
    get encoding() {
      return "utf-8";
    }
    get fatal() {
      return this.#fatal;
    }
    decode(input = new Uint8Array(0)) {
      return decodeUtf8(input, this.#fatal);
    }
  }

  for (const [name, value] of [["TextEncoder", TextEncoder], ["TextDecoder", TextDecoder]]) {
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
  }

  return function runner(transform, config) {
    return function run(call, topic, flags, clientId, username, properties, time) {
      const msg = new Message(call, topic, flags, clientId, username, properties ?? [], time);
      return transform(msg, config);
    };
  };
})
