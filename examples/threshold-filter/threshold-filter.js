// threshold-filter in JavaScript: the records of the Rust module (src/lib.rs), from a
// script.
//
// Drops readings below a threshold and forwards the rest unchanged. The payload is a JSON
// object. Config:
// - threshold (required): a number, checked when the plugin starts.
// - field (default "value"): the member to compare.
// `field < threshold` drops the message; a missing or non-numeric field, or a payload
// that is not a JSON object, is an error (the entry's transform.on_error decides).

const KNOWN = ["threshold", "field"];
for (const name of Object.keys(config)) {
  if (!KNOWN.includes(name)) {
    throw new Error(`unknown config key \`${name}\`; this transform reads \`${KNOWN.join("`, `")}\``);
  }
}
if (config.threshold === undefined) throw new Error("config key `threshold` is required");
const threshold = Number(config.threshold);
if (!Number.isFinite(threshold) || config.threshold.trim() === "") {
  throw new Error(`config key \`threshold\` must be a finite number, not ${JSON.stringify(config.threshold)}`);
}
const field = config.field ?? "value";

function transform(msg) {
  let doc;
  try {
    doc = msg.json();
  } catch (e) {
    throw new Error(`invalid JSON payload: ${e.message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new Error("payload is not a JSON object");
  }
  const value = doc[field];
  if (value === undefined) throw new Error(`field \`${field}\` is missing`);
  if (typeof value !== "number") {
    throw new Error(`field \`${field}\` is not a number: ${JSON.stringify(value)}`);
  }
  // Below the threshold: nothing, the message is dropped (counted `filtered`).
  if (value < threshold) return null;
  return {};
}
