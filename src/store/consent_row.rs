//! A `consent_records` row, both ways: the columns a batch insert writes
//! (listed once, here; insert_consents.sql is built from them) and the
//! record a row reads back as.

use std::{sync::LazyLock, time::SystemTime};

use tokio_postgres::{
    Row,
    types::{Kind, ToSql, Type},
};
use uuid::Uuid;

use super::{Result, row::StoredRow, stored::StoredEnum};
use crate::domain::{
    consent::{
        Action, Choices, ConsentDecision, ConsentRecord, Name, NoticeHash, ReceiptSeal, Regime,
        ServiceDecision, Status,
    },
    ids::{RequestId, SiteId, SubjectId, UserId},
    network::AnonymizedIp,
    receipt::Inclusion,
    seal::Sealed,
    web::{CountryCode, LanguageTag, PageUrl, UserAgent},
};

const TABLE: &str = "consent_records";

/// A column a batch insert writes.
struct Column {
    name: &'static str,
    /// The array the batch's values travel in, one element per record.
    array: Type,
    /// Travels as comma-joined text and is stored as `text[]` (names
    /// cannot hold ',').
    joined: bool,
}

/// Declares the columns once: the row a record becomes, the arrays a batch
/// binds (in this order, as $1, $2, ...), and the list the SQL is built from.
macro_rules! consent_columns {
    ($($name:ident: $ty:ty => $array:ident $($joined:ident)?,)+) => {
        /// One record as a batch insert writes it.
        pub(super) struct ConsentRow {
            $($name: $ty,)+
        }

        /// A batch as insert_consents.sql takes it: one array per column.
        pub(super) struct Columns {
            $($name: Vec<$ty>,)+
        }

        const COLUMNS: &[Column] = &[
            $(Column {
                name: stringify!($name),
                array: Type::$array,
                joined: consent_columns!(@joined $($joined)?),
            },)+
        ];

        impl Columns {
            pub fn with_capacity(records: usize) -> Self {
                Self { $($name: Vec::with_capacity(records),)+ }
            }

            pub fn push(&mut self, row: ConsentRow) {
                $(self.$name.push(row.$name);)+
            }

            pub fn params(&self) -> [&(dyn ToSql + Sync); COLUMNS.len()] {
                [$(&self.$name,)+]
            }
        }

        /// Whether each column's Rust type binds as its array.
        #[cfg(test)]
        fn binds_as_declared() -> Vec<(&'static str, bool)> {
            vec![$((stringify!($name), <Vec<$ty> as ToSql>::accepts(&Type::$array)),)+]
        }
    };
    (@joined joined) => { true };
    (@joined) => { false };
}

consent_columns! {
    tenant_id: Uuid => UUID_ARRAY,
    record_id: Uuid => UUID_ARRAY,
    request_id: Option<String> => TEXT_ARRAY,
    site_id: String => TEXT_ARRAY,
    subject_id: String => TEXT_ARRAY,
    user_id: Option<String> => TEXT_ARRAY,
    action: i16 => INT2_ARRAY,
    status: i16 => INT2_ARRAY,
    granted_categories: String => TEXT_ARRAY joined,
    denied_categories: String => TEXT_ARRAY joined,
    granted_services: String => TEXT_ARRAY joined,
    denied_services: String => TEXT_ARRAY joined,
    banner_revision: Option<String> => TEXT_ARRAY,
    regime: i16 => INT2_ARRAY,
    gpc_detected: bool => BOOL_ARRAY,
    gpc_honoured: bool => BOOL_ARRAY,
    ccpa_opt_out: bool => BOOL_ARRAY,
    tcf_string: Option<String> => TEXT_ARRAY,
    gpp_string: Option<String> => TEXT_ARRAY,
    google_ac_string: Option<String> => TEXT_ARRAY,
    country_code: Option<String> => TEXT_ARRAY,
    language_code: Option<String> => TEXT_ARRAY,
    page_url: Option<String> => TEXT_ARRAY,
    user_agent: Option<String> => TEXT_ARRAY,
    device_type: Option<String> => TEXT_ARRAY,
    os: Option<String> => TEXT_ARRAY,
    browser: Option<String> => TEXT_ARRAY,
    anonymized_ip: Option<String> => TEXT_ARRAY,
    client_time: Option<SystemTime> => TIMESTAMPTZ_ARRAY,
    record_time: SystemTime => TIMESTAMPTZ_ARRAY,
    expire_time: SystemTime => TIMESTAMPTZ_ARRAY,
    notice_version: Option<String> => TEXT_ARRAY,
    notice_sha256: Option<Vec<u8>> => BYTEA_ARRAY,
    ip_ciphertext: Option<Vec<u8>> => BYTEA_ARRAY,
    ip_key_id: Option<String> => TEXT_ARRAY,
    receipt_key_id: String => TEXT_ARRAY,
    receipt_signature: Vec<u8> => BYTEA_ARRAY,
    receipt_proof: Option<Vec<u8>> => BYTEA_ARRAY,
    log_salt: Vec<u8> => BYTEA_ARRAY,
    log_leaf: Option<Vec<u8>> => BYTEA_ARRAY,
    log_tag: Option<Vec<u8>> => BYTEA_ARRAY,
}

/// insert_consents.sql with its column lists filled in, built once.
pub(super) static INSERT_CONSENTS: LazyLock<String> =
    LazyLock::new(|| insert_sql(include_str!("sql/insert_consents.sql")));

fn insert_sql(template: &str) -> String {
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    let values: Vec<String> = COLUMNS
        .iter()
        .map(|c| match c.joined {
            true => format!("string_to_array({}, ',')", c.name),
            false => c.name.to_string(),
        })
        .collect();
    let arrays: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| match c.array.kind() {
            Kind::Array(element) => format!("${}::{}[]", i + 1, element.name()),
            _ => unreachable!("every column travels as an array"),
        })
        .collect();
    template
        .replace("/* columns */", &names.join(", "))
        .replace("/* values */", &values.join(", "))
        .replace("/* arrays */", &arrays.join(", "))
}

fn text(value: Option<&impl AsRef<str>>) -> Option<String> {
    value.map(|v| v.as_ref().to_string())
}

fn joined(names: &[Name]) -> String {
    names
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join(",")
}

/// "category/service" strings, split by decision.
fn joined_services(services: &[ServiceDecision]) -> (Vec<String>, Vec<String>) {
    let joined = |granted: bool| {
        services
            .iter()
            .filter(|s| s.granted == granted)
            .map(|s| format!("{}/{}", s.category.as_ref(), s.service.as_ref()))
            .collect()
    };
    (joined(true), joined(false))
}

impl ConsentRow {
    pub fn of(sealed: &Sealed) -> Self {
        let (record, encrypted_ip, receipt) = (
            &sealed.record,
            sealed.encrypted_ip.as_ref(),
            &sealed.receipt,
        );
        let d = &record.decision;
        let (granted_services, denied_services) = joined_services(d.choices.services());
        Self {
            tenant_id: sealed.tenant_id,
            record_id: record.id,
            request_id: text(d.request_id.as_ref()),
            site_id: d.site_id.as_ref().to_string(),
            subject_id: d.subject_id.as_ref().to_string(),
            user_id: text(d.user_id.as_ref()),
            action: d.action.to_db(),
            status: record.status.to_db(),
            granted_categories: joined(d.choices.granted()),
            denied_categories: joined(d.choices.denied()),
            granted_services: granted_services.join(","),
            denied_services: denied_services.join(","),
            banner_revision: d.banner_revision.clone(),
            regime: d.regime.to_db(),
            gpc_detected: d.gpc_detected,
            gpc_honoured: d.gpc_honoured,
            ccpa_opt_out: d.ccpa_opt_out,
            tcf_string: d.tcf_string.clone(),
            gpp_string: d.gpp_string.clone(),
            google_ac_string: d.google_ac_string.clone(),
            country_code: text(d.country.as_ref()),
            language_code: text(d.language.as_ref()),
            page_url: text(d.page_url.as_ref()),
            user_agent: text(d.user_agent.as_ref()),
            device_type: d.user_agent.as_ref().map(|ua| ua.device_type.clone()),
            os: d.user_agent.as_ref().map(|ua| ua.os.clone()),
            browser: d.user_agent.as_ref().map(|ua| ua.browser.clone()),
            anonymized_ip: d.anonymized_ip.map(|ip| ip.to_string()),
            client_time: d.client_time,
            record_time: record.record_time,
            expire_time: record.expire_time,
            notice_version: d.notice_version.clone(),
            notice_sha256: d.notice_sha256.map(|hash| hash.as_bytes().to_vec()),
            ip_ciphertext: encrypted_ip.map(|e| e.ciphertext.clone()),
            ip_key_id: encrypted_ip.map(|e| e.key_id.clone()),
            receipt_key_id: receipt.key_id.clone(),
            receipt_signature: receipt.signature.to_vec(),
            receipt_proof: receipt.inclusion.as_ref().map(Inclusion::to_bytes),
            log_salt: sealed.log_salt.to_vec(),
            log_leaf: sealed.log_leaf.map(|tagged| tagged.leaf.to_vec()),
            log_tag: sealed.log_leaf.map(|tagged| tagged.tag.to_vec()),
        }
    }
}

fn split_services(
    row: &StoredRow,
    column: &str,
    granted: bool,
) -> Result<impl Iterator<Item = Result<ServiceDecision>>> {
    let joined: Vec<String> = row.get(column)?;
    let corrupt = move |why: String| row.corrupt(column, why);
    Ok(joined.into_iter().map(move |entry| {
        let (category, service) = entry
            .split_once('/')
            .ok_or_else(|| corrupt("a service entry without '/'".into()))?;
        Ok(ServiceDecision {
            category: Name::parse(category.to_string()).map_err(corrupt)?,
            service: Name::parse(service.to_string()).map_err(corrupt)?,
            granted,
        })
    }))
}

/// Rebuilds a record. Values were validated before they were written, so a
/// value that no longer parses is a corrupt row, not an input error.
pub(super) fn record_from_row(row: &Row) -> Result<ConsentRecord> {
    let row = StoredRow::of(TABLE, row);
    let services = split_services(&row, "granted_services", true)?
        .chain(split_services(&row, "denied_services", false)?)
        .collect::<Result<Vec<_>>>()?;
    let user_agent = match row.get::<Option<String>>("user_agent")? {
        Some(raw) => Some(UserAgent::from_stored(
            raw,
            row.get::<Option<String>>("device_type")?
                .unwrap_or_default(),
            row.get::<Option<String>>("os")?.unwrap_or_default(),
            row.get::<Option<String>>("browser")?.unwrap_or_default(),
        )),
        None => None,
    };
    let decision = ConsentDecision {
        request_id: row.parse_opt("request_id", RequestId::parse)?,
        site_id: row.parse("site_id", SiteId::parse)?,
        subject_id: row.parse("subject_id", SubjectId::parse)?,
        user_id: row.parse_opt("user_id", UserId::parse)?,
        action: row.parse("action", Action::from_db)?,
        choices: Choices::from_stored(
            row.get("granted_categories")?,
            row.get("denied_categories")?,
            services,
        ),
        banner_revision: row.get("banner_revision")?,
        regime: row.parse("regime", Regime::from_db)?,
        gpc_detected: row.get("gpc_detected")?,
        gpc_honoured: row.get("gpc_honoured")?,
        ccpa_opt_out: row.get("ccpa_opt_out")?,
        tcf_string: row.get("tcf_string")?,
        gpp_string: row.get("gpp_string")?,
        google_ac_string: row.get("google_ac_string")?,
        country: row.parse_opt("country_code", CountryCode::parse)?,
        language: row.parse_opt("language_code", LanguageTag::parse)?,
        page_url: row.parse_opt("page_url", PageUrl::parse)?,
        user_agent,
        anonymized_ip: row.parse_opt("anonymized_ip", |cidr: String| {
            AnonymizedIp::from_stored(&cidr).ok_or("not a network")
        })?,
        // Never read back: the encrypted form stays in the database.
        full_ip: None,
        notice_version: row.get("notice_version")?,
        notice_sha256: row.parse_opt("notice_sha256", |bytes: Vec<u8>| {
            NoticeHash::from_bytes(&bytes).ok_or("not a SHA-256 digest")
        })?,
        client_time: row.get("client_time")?,
    };
    let key_id: Option<String> = row.get("receipt_key_id")?;
    let signature: Option<[u8; 64]> = row.parse_opt("receipt_signature", |bytes: Vec<u8>| {
        <[u8; 64]>::try_from(bytes).map_err(|_| "not 64 bytes")
    })?;
    let seal = match (key_id, signature) {
        (Some(key_id), Some(signature)) => Some(ReceiptSeal {
            key_id,
            signature,
            inclusion: row.parse_opt("receipt_proof", |bytes: Vec<u8>| {
                Inclusion::from_bytes(&bytes)
            })?,
        }),
        _ => None,
    };
    Ok(ConsentRecord {
        id: row.get("record_id")?,
        decision,
        status: row.parse("status", Status::from_db)?,
        record_time: row.get("record_time")?,
        expire_time: row.get("expire_time")?,
        seal,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_column_binds_as_the_array_it_is_declared_with() {
        for (column, binds) in binds_as_declared() {
            assert!(binds, "{column}");
        }
    }

    #[test]
    fn the_insert_names_every_column_once_in_each_list_with_its_own_parameter() {
        let sql = INSERT_CONSENTS.as_str();
        assert!(!sql.contains("/* "), "a list left unfilled:\n{sql}");
        let between = |open: &str, close: &str| -> Vec<String> {
            let start = sql.find(open).unwrap_or_else(|| panic!("{open}")) + open.len();
            let end = start + sql[start..].find(close).unwrap();
            sql[start..end]
                .split(',')
                .map(|s| s.trim().to_string())
                .collect()
        };
        let names: Vec<String> = COLUMNS.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(between("INSERT INTO consent_records (", ")"), names);
        assert_eq!(between("AS r (", ")"), names);
        let arrays = between("unnest(", ") AS r");
        assert_eq!(arrays.len(), names.len());
        for (i, array) in arrays.iter().enumerate() {
            assert!(array.starts_with(&format!("${}::", i + 1)), "{array}");
            assert!(array.ends_with("[]"), "{array}");
        }
        assert_eq!(Columns::with_capacity(0).params().len(), names.len());
    }

    /// The columns of consent_records as the migrations create them: every
    /// migration, so a new one's columns cannot be missed.
    fn migrated_columns() -> BTreeSet<String> {
        let migrations = (super::super::migrate::MIGRATIONS.iter())
            .map(|(_, _, sql)| *sql)
            .collect::<Vec<_>>()
            .join("\n");
        let lines: Vec<&str> = migrations
            .lines()
            .map(|line| line.split("--").next().unwrap().trim())
            .collect();
        let mut columns = BTreeSet::new();
        let mut in_create = false;
        let mut in_alter = false;
        for line in lines {
            if line.starts_with("CREATE TABLE consent_records") {
                in_create = true;
                continue;
            }
            if line.starts_with("ALTER TABLE consent_records") {
                in_alter = true;
            }
            let word = |line: &str| line.split_whitespace().next().unwrap_or("").to_string();
            if in_create {
                if line.starts_with(')') {
                    in_create = false;
                } else if !line.is_empty() && !line.starts_with("PRIMARY KEY") {
                    columns.insert(word(line));
                }
            }
            if in_alter {
                if let Some(at) = line.find("ADD COLUMN ") {
                    columns.insert(word(&line[at + "ADD COLUMN ".len()..]));
                }
                if line.ends_with(';') {
                    in_alter = false;
                }
            }
        }
        columns
    }

    #[test]
    fn the_insert_writes_every_column_the_migrations_create() {
        let written: BTreeSet<String> = COLUMNS.iter().map(|c| c.name.to_string()).collect();
        assert_eq!(written, migrated_columns());
    }
}
