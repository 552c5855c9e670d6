//! Counting what an OTLP logs request holds before decoding it: a protobuf log record
//! can be two bytes on the wire and two hundred in memory once decoded, so the count is
//! checked against `max_records_per_request` on the encoded bytes.

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

/// What a request holds: log records, and the resource and scope containers around them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub log_records: usize,
    pub containers: usize,
}

impl Counts {
    pub fn exceeds(&self, max: usize) -> bool {
        self.log_records > max || self.containers > max
    }
}

/// Counts an `ExportLogsServiceRequest` in protobuf, stopping once past `max`. `None`
/// when the bytes are not well-formed protobuf (the decoder then says why).
pub fn protobuf(bytes: &[u8], max: usize) -> Option<Counts> {
    let mut counts = Counts::default();
    // ExportLogsServiceRequest.resource_logs = 1, ResourceLogs.scope_logs = 2,
    // ScopeLogs.log_records = 2.
    for resource_logs in fields(bytes, 1) {
        counts.containers += 1;
        for scope_logs in fields(resource_logs?, 2) {
            counts.containers += 1;
            counts.log_records += fields(scope_logs?, 2).count();
            if counts.exceeds(max) {
                return Some(counts);
            }
        }
    }
    Some(counts)
}

/// The length-delimited fields numbered `wanted` in one message; an item is `None` when
/// the message is malformed (iteration then stops).
fn fields(mut bytes: &[u8], wanted: u64) -> impl Iterator<Item = Option<&[u8]>> {
    std::iter::from_fn(move || {
        while !bytes.is_empty() {
            let Some(key) = varint(&mut bytes) else {
                bytes = &[];
                return Some(None);
            };
            let value = match key & 7 {
                0 => varint(&mut bytes).map(|_| None),
                1 => advance(&mut bytes, 8).map(|_| None),
                2 => varint(&mut bytes)
                    .and_then(|len| usize::try_from(len).ok())
                    .and_then(|len| advance(&mut bytes, len))
                    .map(Some),
                5 => advance(&mut bytes, 4).map(|_| None),
                _ => None,
            };
            match value {
                None => {
                    bytes = &[];
                    return Some(None);
                }
                Some(Some(field)) if key >> 3 == wanted => return Some(Some(field)),
                Some(_) => {}
            }
        }
        None
    })
}

fn advance<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Counts an OTLP/JSON request (camelCase or snake_case keys) without building it.
/// `None` when it is not JSON of that shape (the decoder then says why).
pub fn json(bytes: &[u8]) -> Option<Counts> {
    let request: JsonRequest = serde_json::from_slice(bytes).ok()?;
    Some(request.counts)
}

struct JsonRequest {
    counts: Counts,
}

impl<'de> Deserialize<'de> for JsonRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonRequest, D::Error> {
        #[derive(Deserialize)]
        struct Request {
            #[serde(default, rename = "resourceLogs", alias = "resource_logs")]
            resource_logs: SeqSum<ResourceLogs>,
        }
        #[derive(Deserialize)]
        struct ResourceLogs {
            #[serde(default, rename = "scopeLogs", alias = "scope_logs")]
            scope_logs: SeqSum<ScopeLogs>,
        }
        #[derive(Deserialize)]
        struct ScopeLogs {
            #[serde(default, rename = "logRecords", alias = "log_records")]
            log_records: SeqSum<IgnoredAny>,
        }
        impl Countable for ResourceLogs {
            fn counts(&self) -> Counts {
                let inner = self.scope_logs.0;
                Counts {
                    log_records: inner.log_records,
                    containers: inner.containers + 1,
                }
            }
        }
        impl Countable for ScopeLogs {
            fn counts(&self) -> Counts {
                Counts {
                    log_records: self.log_records.0.containers,
                    containers: 1,
                }
            }
        }
        let request = Request::deserialize(d)?;
        Ok(JsonRequest {
            counts: request.resource_logs.0,
        })
    }
}

trait Countable {
    fn counts(&self) -> Counts;
}

impl Countable for IgnoredAny {
    fn counts(&self) -> Counts {
        Counts {
            log_records: 0,
            containers: 1,
        }
    }
}

/// The sum of the counts of a sequence's items, keeping none of them.
struct SeqSum<T>(Counts, std::marker::PhantomData<T>);

impl<T> Default for SeqSum<T> {
    fn default() -> SeqSum<T> {
        SeqSum(Counts::default(), std::marker::PhantomData)
    }
}

impl<'de, T: Deserialize<'de> + Countable> Deserialize<'de> for SeqSum<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeqSum<T>, D::Error> {
        struct Sum<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Countable> Visitor<'de> for Sum<T> {
            type Value = SeqSum<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeqSum<T>, A::Error> {
                let mut sum = Counts::default();
                while let Some(item) = seq.next_element::<T>()? {
                    let c = item.counts();
                    sum.log_records += c.log_records;
                    sum.containers += c.containers;
                }
                Ok(SeqSum(sum, std::marker::PhantomData))
            }
        }
        d.deserialize_seq(Sum(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use prost::Message;

    fn request(shape: &[&[usize]]) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: shape
                .iter()
                .map(|scopes| ResourceLogs {
                    scope_logs: scopes
                        .iter()
                        .map(|&n| ScopeLogs {
                            log_records: vec![LogRecord::default(); n],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn protobuf_and_json_counts_match_the_decoded_request() {
        let r = request(&[&[3, 0, 2], &[5]]);
        let expected = Counts {
            log_records: 10,
            containers: 6,
        };
        assert_eq!(protobuf(&r.encode_to_vec(), 100), Some(expected));
        assert_eq!(json(&serde_json::to_vec(&r).unwrap()), Some(expected));
        let snake = br#"{"resource_logs":[{"scope_logs":[{"log_records":[{},{}]}]}]}"#;
        assert_eq!(json(snake).map(|c| c.log_records), Some(2));
    }

    #[test]
    fn counting_stops_past_the_limit_and_malformed_input_is_left_to_the_decoder() {
        let r = request(&[&[1000], &[1000]]);
        let counts = protobuf(&r.encode_to_vec(), 10).unwrap();
        assert!(counts.exceeds(10));
        assert_eq!(counts.log_records, 1000);
        let mut bytes = r.encode_to_vec();
        bytes.truncate(bytes.len() - 1);
        assert_eq!(protobuf(&bytes, 10_000), None);
        assert_eq!(json(b"{\"resourceLogs\": 3}"), None);
    }
}
