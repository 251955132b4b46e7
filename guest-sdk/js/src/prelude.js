// The runtime's JavaScript half (docs/javascript.md). It runs once per instance, before
// the user's script, with the runtime's native helpers, and returns `runner`, which the
// runtime calls with the script's `transform` once the script's top-level code has run.
// `msg` is built here, as an object literal: the engine sets its members faster than
// one native call per member would.
(function (decodeUtf8, encodeUtf8, payloadBytes, payloadText, payloadJson) {
  "use strict";

  // The payload stays with the runtime until the script reads it: `payload` makes its
  // Uint8Array on first use, and `text()` reads it without one. `msg` is an object
  // literal over this prototype (a class with a constructor and private fields took
  // 0.3 µs more per call, measured natively).
  const CALL = Symbol("call");
  const PAYLOAD = Symbol("payload");
  const Message = {
    get payload() {
      return (this[PAYLOAD] ??= payloadBytes(this[CALL]));
    },
    set payload(bytes) {
      this[PAYLOAD] = bytes;
    },
    // The payload as UTF-8 text; invalid sequences become U+FFFD.
    text() {
      const bytes = this[PAYLOAD];
      return bytes === undefined ? payloadText(this[CALL]) : decodeUtf8(bytes, false);
    },
    // The payload parsed as JSON; throws a SyntaxError when it is not JSON. The runtime
    // parses the untouched payload itself when it can (json.rs), and it answers
    // `undefined` for what it leaves to JSON.parse.
    json() {
      if (this[PAYLOAD] === undefined) {
        const doc = payloadJson(this[CALL]);
        if (doc !== undefined) return doc;
      }
      return JSON.parse(this.text());
    },
  };

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
      const msg = {
        __proto__: Message,
        topic,
        qos: flags & 3,
        retain: (flags & 4) !== 0,
        clientId,
        username: username ?? null,
        properties: properties ?? [],
        timestamp: time,
        [CALL]: call,
        [PAYLOAD]: undefined,
      };
      return transform(msg, config);
    };
  };
})
