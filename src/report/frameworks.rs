//! The compliance frameworks a report is written for: the controls its sections give
//! evidence for, and how long each framework wants audit records kept.
//!
//! | `--framework` | controls cited | retention minimum |
//! |---|---|---|
//! | `soc2` | CC6.1, CC6.2, CC6.3, CC7.2, CC7.3, CC8.1 | none set; 1 year is common practice |
//! | `hipaa` | §164.312(b), §164.308(a)(1)(ii)(D), §164.308(a)(5)(ii)(C), §164.316(b)(2)(i) | 6 years (§164.316(b)(2)(i)) |
//! | `gdpr` | Art. 5(1)(e), 5(1)(f), 30, 32, 33 | none: storage limitation caps it instead |
//! | `iso27001` | A.5.18, A.5.28, A.5.33, A.8.5, A.8.15, A.8.16, A.8.32 | none set; 1 year is common practice |
//!
//! Every report also lists the fixed periods other regimes set, for comparison: HIPAA
//! 6 years, SOX 7 years (auditors' records, 17 CFR 210.2-06), PCI DSS 12 months with the
//! last 3 at hand (requirement 10.5.1). A period of N years is compared as N × 365 days
//! plus the leap days it may contain (⌈N/4⌉), so a setting that meets it does so
//! whatever the calendar.

use serde::Serialize;

/// A framework the report can be written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    Soc2,
    Hipaa,
    Gdpr,
    Iso27001,
}

/// Where in the report the evidence for a control is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Counts,
    Access,
    Changes,
    FailedAuth,
    Security,
    Verification,
    Retention,
}

impl Section {
    /// The anchor of the section in the HTML report (and its key in the JSON).
    pub fn id(self) -> &'static str {
        match self {
            Section::Counts => "counts",
            Section::Access => "access",
            Section::Changes => "changes",
            Section::FailedAuth => "failed_auth",
            Section::Security => "security",
            Section::Verification => "verification",
            Section::Retention => "retention",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Section::Counts => "Events by type and severity",
            Section::Access => "Access audit",
            Section::Changes => "Change audit",
            Section::FailedAuth => "Failed authentication",
            Section::Security => "Security events",
            Section::Verification => "Evidence verification",
            Section::Retention => "Retention",
        }
    }
}

/// One control and where the report gives evidence for it.
#[derive(Debug, Clone, Serialize)]
pub struct Control {
    pub id: &'static str,
    pub title: &'static str,
    /// What the control asks, in a sentence.
    pub requirement: &'static str,
    pub sections: &'static [Section],
}

/// What a framework says about keeping audit records.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionRule {
    /// The period compared against, in years; `None` when there is nothing to compare.
    pub years: Option<u32>,
    /// Whether the framework itself sets that period (`false`: common practice only).
    pub required: bool,
    /// The text the period comes from.
    pub citation: &'static str,
    pub note: &'static str,
}

impl RetentionRule {
    /// The period in days: N × 365 plus the ⌈N/4⌉ leap days N years may contain.
    pub fn minimum_days(&self) -> Option<u32> {
        self.years.map(years_in_days)
    }
}

/// N years as days, counting every leap day they may contain.
pub fn years_in_days(years: u32) -> u32 {
    years * 365 + years.div_ceil(4)
}

/// A fixed retention period another regime sets, shown for comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ReferencePeriod {
    pub regime: &'static str,
    pub years: u32,
    pub days: u32,
    pub citation: &'static str,
}

/// HIPAA 6 years, SOX 7, PCI DSS 1.
pub fn reference_periods() -> Vec<ReferencePeriod> {
    [
        (
            "HIPAA",
            6,
            "45 CFR §164.316(b)(2)(i): documentation kept 6 years from creation or last effective date",
        ),
        (
            "SOX",
            7,
            "SOX §802, 17 CFR 210.2-06: audit records and workpapers kept 7 years",
        ),
        (
            "PCI DSS",
            1,
            "PCI DSS v4.0 req. 10.5.1: audit log history kept at least 12 months, the last 3 immediately available",
        ),
    ]
    .into_iter()
    .map(|(regime, years, citation)| ReferencePeriod {
        regime,
        years,
        days: years_in_days(years),
        citation,
    })
    .collect()
}

impl Framework {
    pub const ALL: [Framework; 4] = [
        Framework::Soc2,
        Framework::Hipaa,
        Framework::Gdpr,
        Framework::Iso27001,
    ];

    /// `soc2`, `hipaa`, `gdpr`, `iso27001`.
    pub fn parse(name: &str) -> Result<Framework, String> {
        Framework::ALL
            .into_iter()
            .find(|f| f.id().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!("unknown framework `{name}`: use one of soc2, hipaa, gdpr, iso27001")
            })
    }

    pub fn id(self) -> &'static str {
        match self {
            Framework::Soc2 => "soc2",
            Framework::Hipaa => "hipaa",
            Framework::Gdpr => "gdpr",
            Framework::Iso27001 => "iso27001",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Framework::Soc2 => "SOC 2 (AICPA Trust Services Criteria)",
            Framework::Hipaa => "HIPAA Security Rule (45 CFR Part 164, Subpart C)",
            Framework::Gdpr => "GDPR (Regulation (EU) 2016/679)",
            Framework::Iso27001 => "ISO/IEC 27001:2022 (Annex A)",
        }
    }

    pub fn controls(self) -> Vec<Control> {
        use Section::*;
        let c = |id, title, requirement, sections| Control {
            id,
            title,
            requirement,
            sections,
        };
        match self {
            Framework::Soc2 => vec![
                c(
                    "CC6.1",
                    "Logical access security",
                    "Logical access to information assets is restricted and its use is recorded.",
                    &[Access, FailedAuth],
                ),
                c(
                    "CC6.2",
                    "User registration and removal",
                    "Users and credentials are registered, authorized and removed under control.",
                    &[Changes],
                ),
                c(
                    "CC6.3",
                    "Role-based access",
                    "Access is granted, changed and removed by role, with least privilege.",
                    &[Changes],
                ),
                c(
                    "CC7.2",
                    "Monitoring for anomalies",
                    "System components are monitored for anomalies that indicate malicious acts or errors.",
                    &[Security, FailedAuth, Counts],
                ),
                c(
                    "CC7.3",
                    "Evaluation of security events",
                    "Security events are evaluated to decide whether they are incidents.",
                    &[Security],
                ),
                c(
                    "CC8.1",
                    "Change management",
                    "Changes to infrastructure, software and configuration are authorized and recorded.",
                    &[Changes],
                ),
                c(
                    "CC7.2 / CC4.1",
                    "Integrity of the monitoring record",
                    "The audit trail the monitoring relies on is complete and unaltered.",
                    &[Verification, Retention],
                ),
            ],
            Framework::Hipaa => vec![
                c(
                    "§164.312(b)",
                    "Audit controls",
                    "Mechanisms that record and examine activity in systems that contain or use ePHI.",
                    &[Counts, Access, Changes, Verification],
                ),
                c(
                    "§164.308(a)(1)(ii)(D)",
                    "Information system activity review",
                    "Regular review of audit logs, access reports and security incident tracking.",
                    &[Access, Security],
                ),
                c(
                    "§164.308(a)(5)(ii)(C)",
                    "Log-in monitoring",
                    "Monitoring log-in attempts and reporting discrepancies.",
                    &[FailedAuth],
                ),
                c(
                    "§164.308(a)(6)(ii)",
                    "Security incident response and reporting",
                    "Identifying and documenting suspected or known security incidents.",
                    &[Security],
                ),
                c(
                    "§164.316(b)(2)(i)",
                    "Documentation time limit",
                    "Required documentation is retained 6 years from creation or last effective date.",
                    &[Retention],
                ),
            ],
            Framework::Gdpr => vec![
                c(
                    "Art. 5(1)(e)",
                    "Storage limitation",
                    "Personal data is kept no longer than necessary for its purposes.",
                    &[Retention],
                ),
                c(
                    "Art. 5(1)(f)",
                    "Integrity and confidentiality",
                    "Personal data is protected against unauthorised processing and alteration.",
                    &[Access, Verification],
                ),
                c(
                    "Art. 30",
                    "Records of processing activities",
                    "The controller keeps a record of its processing; these counts document the audit processing itself.",
                    &[Counts],
                ),
                c(
                    "Art. 32",
                    "Security of processing",
                    "Measures ensuring confidentiality, integrity and resilience, regularly tested.",
                    &[Access, FailedAuth, Security, Verification],
                ),
                c(
                    "Art. 33",
                    "Personal data breaches",
                    "Breaches are notified within 72 hours and documented (Art. 33(5)).",
                    &[Security],
                ),
            ],
            Framework::Iso27001 => vec![
                c(
                    "A.8.15",
                    "Logging",
                    "Logs of activities, exceptions, faults and events are produced, stored, protected and analysed.",
                    &[Counts, Access, Verification],
                ),
                c(
                    "A.8.16",
                    "Monitoring activities",
                    "Networks, systems and applications are monitored for anomalous behaviour.",
                    &[Security, FailedAuth],
                ),
                c(
                    "A.8.5",
                    "Secure authentication",
                    "Authentication is secure; failed attempts are recorded.",
                    &[FailedAuth],
                ),
                c(
                    "A.5.18",
                    "Access rights",
                    "Access rights are provisioned, reviewed, modified and removed under control.",
                    &[Changes],
                ),
                c(
                    "A.8.32",
                    "Change management",
                    "Changes to information processing facilities are subject to change management.",
                    &[Changes],
                ),
                c(
                    "A.5.28",
                    "Collection of evidence",
                    "Evidence related to security events is identified, collected and preserved.",
                    &[Verification],
                ),
                c(
                    "A.5.33",
                    "Protection of records",
                    "Records are protected from loss, destruction, falsification and unauthorised access.",
                    &[Verification, Retention],
                ),
            ],
        }
    }

    pub fn retention(self) -> RetentionRule {
        match self {
            Framework::Soc2 => RetentionRule {
                years: Some(1),
                required: false,
                citation: "AICPA TSC 2017: no fixed period",
                note: "The criteria set no retention period; evidence must cover the audit period (a Type 2 period is usually 3 to 12 months). Keeping 1 year is common practice.",
            },
            Framework::Hipaa => RetentionRule {
                years: Some(6),
                required: true,
                citation: "45 CFR §164.316(b)(2)(i)",
                note: "Documentation required by the Security Rule is kept 6 years from its creation or the date it was last in effect; audit records are commonly kept to the same period.",
            },
            Framework::Gdpr => RetentionRule {
                years: None,
                required: false,
                citation: "GDPR Art. 5(1)(e): no minimum",
                note: "GDPR sets no minimum; storage limitation requires that records holding personal data be kept no longer than their purpose needs. Set and document a period per purpose.",
            },
            Framework::Iso27001 => RetentionRule {
                years: Some(1),
                required: false,
                citation: "ISO/IEC 27001:2022 A.5.33, A.8.15: no fixed period",
                note: "The standard leaves the period to the organisation's retention policy (A.5.33) and legal requirements; 1 year is common practice.",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_count_every_leap_day_they_may_hold() {
        // 2024-01-01 + 6 × 365 days falls on 2029-12-30: two leap days short of 6 years.
        assert_eq!(years_in_days(6), 2192);
        assert_eq!(years_in_days(7), 2557);
        assert_eq!(years_in_days(1), 366);
        let hipaa = Framework::Hipaa.retention();
        assert!(hipaa.required);
        assert_eq!(hipaa.minimum_days(), Some(2192));
        assert_eq!(Framework::Gdpr.retention().minimum_days(), None);
        assert!(!Framework::Soc2.retention().required);
    }

    #[test]
    fn frameworks_parse_by_their_ids_only() {
        for f in Framework::ALL {
            assert_eq!(Framework::parse(f.id()), Ok(f));
        }
        assert_eq!(Framework::parse("HIPAA"), Ok(Framework::Hipaa));
        let err = Framework::parse("sox").unwrap_err();
        assert!(err.contains("soc2, hipaa, gdpr, iso27001"), "{err}");
    }

    #[test]
    fn every_framework_cites_evidence_for_each_section_it_uses() {
        for f in Framework::ALL {
            let controls = f.controls();
            assert!(controls.len() >= 4, "{f:?}");
            for section in [Section::Verification, Section::Retention, Section::Security] {
                assert!(
                    controls.iter().any(|c| c.sections.contains(&section)),
                    "{f:?} cites nothing for {section:?}"
                );
            }
        }
        let references = reference_periods();
        let days: Vec<_> = references.iter().map(|r| (r.regime, r.days)).collect();
        assert_eq!(days, [("HIPAA", 2192), ("SOX", 2557), ("PCI DSS", 366)]);
    }
}
