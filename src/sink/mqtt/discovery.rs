//! Home Assistant MQTT discovery: retained config messages that make each
//! camera appear as one device with
//!
//! * an `event` entity fired by every detection, or with events published
//!   (`messages = "events"` or `"both"`) by every event message, its `type`
//!   (`new`/`update`/`end`) in the event data (event types = the labels
//!   that may be published),
//! * a `sensor` with the last detected label and one with its 0..1 score,
//! * an `image` entity showing the last snapshot (only when snapshots are on;
//!   otherwise its config is cleared with an empty retained message),
//!
//! all tied to the camera's availability topic. Published on every
//! connection and whenever Home Assistant announces `online` on
//! `<discovery_prefix>/status`. See
//! <https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery>.

use serde_json::{json, Value};

use super::Topics;

/// What the discovery messages describe.
#[derive(Debug, Clone)]
pub(crate) struct DeviceInfo {
    pub camera: String,
    pub model_name: String,
    pub labels: Vec<String>,
    pub snapshots: bool,
    /// Event messages are published: the entities read the events topic.
    pub events: bool,
}

/// The (topic, payload) pairs to publish retained with QoS 1. An empty
/// payload deletes an entity.
pub(crate) fn messages(prefix: &str, topics: &Topics, dev: &DeviceInfo) -> Vec<(String, Vec<u8>)> {
    let node = format!("camtrapd_{}", dev.camera.replace('-', "_"));
    let device = json!({
        "identifiers": [node],
        "name": format!("camtrapd {}", dev.camera),
        "manufacturer": "camtrapd",
        "model": dev.model_name,
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let common = |domain: &str, name: &str, id: &str| -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("name".into(), json!(name));
        m.insert("unique_id".into(), json!(format!("{node}_{id}")));
        // `default_entity_id` replaced `object_id` in Home Assistant 2025.10.
        m.insert(
            "default_entity_id".into(),
            json!(format!("{domain}.{node}_{id}")),
        );
        m.insert("availability_topic".into(), json!(topics.availability));
        m.insert("payload_available".into(), json!("online"));
        m.insert("payload_not_available".into(), json!("offline"));
        m.insert("device".into(), device.clone());
        m
    };
    let state = if dev.events {
        &topics.events
    } else {
        &topics.detection
    };
    let mut event = common("event", "Detection", "detection");
    event.insert("state_topic".into(), json!(state));
    event.insert("event_types".into(), json!(dev.labels));
    event.insert(
        "value_template".into(),
        if dev.events {
            json!("{{ {'event_type': value_json.label, 'type': value_json.type, 'score': value_json.score, 'start_time': value_json.start_time, 'last_seen': value_json.last_seen, 'id': value_json.id} | to_json }}")
        } else {
            json!("{{ {'event_type': value_json.label, 'score': value_json.score, 'captured_at': value_json.captured_at, 'id': value_json.id} | to_json }}")
        },
    );
    event.insert("icon".into(), json!("mdi:paw"));
    let mut label = common("sensor", "Last label", "last_label");
    label.insert("state_topic".into(), json!(state));
    label.insert("value_template".into(), json!("{{ value_json.label }}"));
    label.insert("json_attributes_topic".into(), json!(state));
    label.insert(
        "json_attributes_template".into(),
        if dev.events {
            json!("{{ {'score': value_json.score, 'type': value_json.type, 'last_seen': value_json.last_seen, 'source': value_json.best.source} | to_json }}")
        } else {
            json!("{{ {'score': value_json.score, 'captured_at': value_json.captured_at, 'source': value_json.source} | to_json }}")
        },
    );
    label.insert("icon".into(), json!("mdi:paw"));
    let mut score = common("sensor", "Last score", "last_score");
    score.insert("state_topic".into(), json!(state));
    score.insert("value_template".into(), json!("{{ value_json.score }}"));
    score.insert("state_class".into(), json!("measurement"));
    let mut out = vec![
        (
            format!("{prefix}/event/{node}/detection/config"),
            Value::Object(event),
        ),
        (
            format!("{prefix}/sensor/{node}/last_label/config"),
            Value::Object(label),
        ),
        (
            format!("{prefix}/sensor/{node}/last_score/config"),
            Value::Object(score),
        ),
    ]
    .into_iter()
    .map(|(t, v)| (t, v.to_string().into_bytes()))
    .collect::<Vec<_>>();
    let image_topic = format!("{prefix}/image/{node}/snapshot/config");
    if dev.snapshots {
        let mut image = common("image", "Snapshot", "snapshot");
        image.insert("image_topic".into(), json!(topics.snapshot));
        image.insert("content_type".into(), json!("image/jpeg"));
        out.push((image_topic, Value::Object(image).to_string().into_bytes()));
    } else {
        out.push((image_topic, Vec::new()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_device_with_event_sensors_and_image() {
        let topics = Topics::new("camtrapd", "pen-3");
        let dev = DeviceInfo {
            camera: "pen-3".into(),
            model_name: "zoo".into(),
            labels: vec!["zebra".into(), "lion".into()],
            snapshots: true,
            events: false,
        };
        let m = messages("homeassistant", &topics, &dev);
        let topics_out: Vec<&str> = m.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics_out,
            [
                "homeassistant/event/camtrapd_pen_3/detection/config",
                "homeassistant/sensor/camtrapd_pen_3/last_label/config",
                "homeassistant/sensor/camtrapd_pen_3/last_score/config",
                "homeassistant/image/camtrapd_pen_3/snapshot/config",
            ]
        );
        let ev: Value = serde_json::from_slice(&m[0].1).unwrap();
        assert_eq!(ev["event_types"], json!(["zebra", "lion"]));
        assert_eq!(ev["state_topic"], "camtrapd/pen-3/detection");
        assert_eq!(ev["availability_topic"], "camtrapd/pen-3/availability");
        assert_eq!(ev["device"]["identifiers"], json!(["camtrapd_pen_3"]));
        assert_eq!(ev["default_entity_id"], "event.camtrapd_pen_3_detection");
        assert!(ev.get("object_id").is_none());
        let img: Value = serde_json::from_slice(&m[3].1).unwrap();
        assert_eq!(img["image_topic"], "camtrapd/pen-3/snapshot");
        let off = messages(
            "homeassistant",
            &topics,
            &DeviceInfo {
                snapshots: false,
                ..dev.clone()
            },
        );
        assert!(off[3].1.is_empty());
        let ev = messages(
            "homeassistant",
            &topics,
            &DeviceInfo {
                events: true,
                ..dev
            },
        );
        let e: Value = serde_json::from_slice(&ev[0].1).unwrap();
        assert_eq!(e["state_topic"], "camtrapd/pen-3/events");
        assert!(e["value_template"]
            .as_str()
            .unwrap()
            .contains("value_json.type"));
        let l: Value = serde_json::from_slice(&ev[1].1).unwrap();
        assert_eq!(l["state_topic"], "camtrapd/pen-3/events");
    }
}
