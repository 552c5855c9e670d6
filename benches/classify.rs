//! Throughput of `classify` with the built-in pack (rules and windows) on a realistic mix
//! of AI-gateway audit events, and of a `filter` keeping only violations.
//!
//! The mix, per 20 records: 13 model requests in the LiteLLM, Kong, Cloudflare and
//! OpenTelemetry GenAI shapes (most of a gateway's traffic), 2 successful logins, and one
//! each of a failed login, a key rotation, a budget change, a guardrail violation and an
//! event no rule knows. Users vary over 200 ids, so windows track many keys.
//!
//! The windows' clock advances one second per batch: a batch is a second of traffic from
//! 200 users, about three model requests a second each, which escalates nothing but the
//! failed-login bursts. (On the machine's own clock every user would send hundreds of
//! requests within the 10-second rate window, and every request would be escalated.)

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use vellum::component::Processor;
use vellum::event::Record;
use vellum::processors::classify::{Classifier, ClassifyConfig, Clock, Pack};
use vellum::processors::filter::{Filter, FilterConfig};

const BATCH: usize = 1_000;

fn event(i: usize) -> Value {
    let user = format!("user-{:03}", i % 200);
    match i % 20 {
        0..=4 => json!({"call_type": "acompletion", "model": "gpt-4o-mini", "status": "success",
            "metadata": {"user_api_key_user_id": user}, "response_cost": 0.00042, "total_tokens": 976}),
        5..=8 => {
            json!({"ai": {"proxy": {"meta": {"request_model": "gpt-4o", "provider_name": "openai"},
            "usage": {"prompt_tokens": 812, "completion_tokens": 164, "total_tokens": 976}}},
            "consumer": {"username": user}, "client_ip": "10.1.2.3"})
        }
        9..=11 => {
            json!({"provider": "anthropic", "model": "claude-sonnet-4", "success": true, "cached": false,
            "tokens_in": 812, "tokens_out": 164, "user_id": user})
        }
        12 => {
            json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "user_id": user})
        }
        13 | 14 => json!({"action": "login.succeeded", "user_id": user, "ip": "203.0.113.7"}),
        15 => {
            json!({"type": "login.failed", "actor": {"type": "session", "session": {"user": {"id": user},
            "ip_address": "203.0.113.7"}}, "login.failed": {"error_code": "invalid_credentials"}})
        }
        16 => {
            json!({"changed_by": "admin-1", "action": "rotated", "table_name": "LiteLLM_VerificationToken",
            "object_id": "sk-hash"})
        }
        17 => {
            json!({"changed_by": "admin-1", "action": "updated", "table_name": "LiteLLM_TeamTable",
            "updated_values": "{\"max_budget\": 100.0}"})
        }
        18 => json!({"action": "guardrail.violation", "user_id": user, "guardrail": "toxicity"}),
        _ => json!({"action": "heartbeat", "host": "gw-1"}),
    }
}

fn batch() -> Vec<Record> {
    (0..BATCH)
        .map(|i| {
            let mut r = Record::new("http/gateway");
            if let Value::Object(m) = event(i) {
                r.attributes = m;
            }
            r.resource
                .insert("service.name".into(), json!("ai-gateway"));
            r
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let records = batch();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(BATCH as u64));

    let seconds = Arc::new(AtomicU64::new(0));
    let one_second_per_batch: Clock =
        Arc::new(move || seconds.fetch_add(1, Ordering::Relaxed) * 1_000_000_000);
    let builtin =
        Classifier::with_clock("classify", &ClassifyConfig::default(), one_second_per_batch)
            .expect("the built-in pack loads");
    group.bench_function("builtin_rules_and_windows", |b| {
        b.iter_batched(
            || records.clone(),
            |batch| black_box(builtin.process(batch)),
            BatchSize::LargeInput,
        )
    });

    let rules_only = ClassifyConfig {
        windows: Pack::List(Vec::new()),
        ..ClassifyConfig::default()
    };
    let rules_only = Classifier::new("classify", &rules_only).expect("the built-in pack loads");
    group.bench_function("builtin_rules_only", |b| {
        b.iter_batched(
            || records.clone(),
            |batch| black_box(rules_only.process(batch)),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let classified = rules_only.process(records.clone());
    let cfg: FilterConfig =
        serde_json::from_value(json!({"keep": "event_type == 'security' or severity >= high"}))
            .expect("a valid filter");
    let filter = Filter::new("filter/violations", &cfg).expect("a valid filter");
    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("keep_violations", |b| {
        b.iter_batched(
            || classified.clone(),
            |batch| black_box(filter.process(batch)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
