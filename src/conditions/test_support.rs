//! What the condition tests share: a record with one field of each kind.

use serde_json::json;

use super::{Condition, ConditionError};
use crate::event::{Record, Severity};

pub(super) fn record() -> Record {
    let mut r = Record::new("http/gateway");
    r.severity = Some(Severity::High);
    r.severity_number = 20;
    r.event_type = Some("authentication".into());
    r.attributes.insert("action".into(), json!("login.failed"));
    r.attributes.insert("user_id".into(), json!("u-17"));
    r.attributes.insert("status".into(), json!(401));
    r.attributes.insert("status_text".into(), json!("401"));
    r.attributes.insert("ratio".into(), json!(0.25));
    r.attributes.insert("admin".into(), json!(true));
    r.attributes.insert("nothing".into(), json!(null));
    r.attributes
        .insert("roles".into(), json!(["viewer", "admin"]));
    r.attributes.insert("huge".into(), json!(u64::MAX));
    r.attributes.insert(
        "actor".into(),
        json!({"session": {"user": {"id": "user-abc"}, "ip_address": "10.0.0.7"}}),
    );
    r.attributes.insert(
        "login.failed".into(),
        json!({"error_code": "invalid_credentials"}),
    );
    r.resource
        .insert("service.name".into(), json!("litellm-proxy"));
    r.body = json!({"status": "denied", "items": [{"id": 3}]});
    r.tags = vec!["failed_login_burst".into()];
    r
}

pub(super) fn eval(src: &str) -> bool {
    match Condition::parse(src) {
        Ok(c) => c.eval(&record()),
        Err(e) => panic!("{src}: {e}"),
    }
}

pub(super) fn parse_err(src: &str) -> ConditionError {
    match Condition::parse(src) {
        Ok(_) => panic!("{src} parsed"),
        Err(e) => e,
    }
}
