// router in JavaScript: the records of the Rust module (src/lib.rs), from a script.
//
// Every message goes to the telemetry topic; alarms also go to the alarm topic, keyed by
// their device (a fan-out of two records). The payload is a JSON object with a "type".
// Config:
// - telemetry_topic (default "telemetry")
// - alarm_topic (default "alarms")
// A missing or non-string "type" is simply not an alarm; a "device" that is a string or
// a number keys the alarm record, otherwise the entry's remote.key does.

const KNOWN = ["telemetry_topic", "alarm_topic"];
for (const name of Object.keys(config)) {
  if (!KNOWN.includes(name)) {
    throw new Error(`unknown config key \`${name}\`; this transform reads \`${KNOWN.join("`, `")}\``);
  }
}
const telemetryTopic = config.telemetry_topic ?? "telemetry";
const alarmTopic = config.alarm_topic ?? "alarms";

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
  const telemetry = { topic: telemetryTopic };
  if (doc.type !== "alarm") return telemetry;
  const alarm = { topic: alarmTopic };
  if (typeof doc.device === "string" || typeof doc.device === "number") {
    alarm.key = String(doc.device);
  }
  return [telemetry, alarm];
}
