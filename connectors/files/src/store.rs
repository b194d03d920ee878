//! Object stores of `files` sources: S3-compatible storage, Google Cloud Storage and Azure Blob
//! Storage through object_store, with bounded retries and timeouts.
//!
//! Every cloud source gets its own store, registered in the runtime under
//! `meshgate://<source name>`: two sources on the same bucket with different endpoints or
//! credentials never share a client, and nothing but the sources' own stores can be reached.

use std::sync::Arc;
use std::time::Duration;

use datafusion::object_store::aws::AmazonS3Builder;
use datafusion::object_store::azure::MicrosoftAzureBuilder;
use datafusion::object_store::gcp::GoogleCloudStorageBuilder;
use datafusion::object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::Deserialize;

/// `s3:` options of a `files` source whose url is `s3://bucket/prefix/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    /// Endpoint of an S3-compatible server (`http://127.0.0.1:9000`); AWS's otherwise.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region (`us-east-1` unless the environment says otherwise).
    #[serde(default)]
    pub region: Option<String>,
    /// Access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret access key (a resolved secret).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials (a resolved secret).
    #[serde(default)]
    pub session_token: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) rather than virtual-hosted style
    /// (`bucket.endpoint/key`). Default true: what MinIO, Ceph, moto and most S3-compatible
    /// servers expect; AWS accepts both.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Allow `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: Option<bool>,
    /// Send unsigned requests (public buckets). Default false.
    #[serde(default)]
    pub anonymous: Option<bool>,
}

/// `gcs:` options of a `files` source whose url is `gs://bucket/prefix/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcsOptions {
    /// The service account key (JSON, a resolved secret: `{ file: sa.json }`).
    #[serde(default)]
    pub service_account_key: Option<String>,
    /// Base url of a GCS-compatible server (an emulator); Google's otherwise.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Allow `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: Option<bool>,
    /// Send unsigned requests (public buckets). Default false.
    #[serde(default)]
    pub anonymous: Option<bool>,
}

/// `azure:` options of a `files` source whose url is `az://container/prefix/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureOptions {
    /// Storage account name.
    #[serde(default)]
    pub account: Option<String>,
    /// Shared account key (a resolved secret).
    #[serde(default)]
    pub access_key: Option<String>,
    /// A SAS token, `sv=...&sig=...` (a resolved secret).
    #[serde(default)]
    pub sas_token: Option<String>,
    /// A bearer token (a resolved secret).
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Blob endpoint of an Azure-compatible server (Azurite); Azure's otherwise.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Use the Azurite emulator's well-known account and endpoint. Default false.
    #[serde(default)]
    pub use_emulator: Option<bool>,
    /// Allow `http://` endpoints. Default false.
    #[serde(default)]
    pub allow_http: Option<bool>,
    /// Send unsigned requests (public containers). Default false.
    #[serde(default)]
    pub anonymous: Option<bool>,
}

/// Retries and timeouts of a cloud store: object_store's defaults (10 retries over up to
/// three minutes) would hold a query far past any deadline a client sets.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    /// Retries of one request (0: none).
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
    /// Connect phase of one attempt.
    pub connect_timeout: Duration,
    /// Whole attempt, from sending to the end of the response body.
    pub request_timeout: Duration,
}

/// Default retries of one object store request.
pub const DEFAULT_MAX_RETRIES: usize = 3;
/// Default bound on retrying one request.
pub const DEFAULT_RETRY_TIMEOUT_MS: u64 = 15_000;
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Default timeout of one request.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// A bucket or container of a cloud store, and a key prefix in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `s3`, `gs` or `az`.
    pub scheme: &'static str,
    /// Bucket or container name.
    pub bucket: String,
    /// Key prefix below the bucket, empty or ending in `/`.
    pub prefix: String,
}

/// Splits a cloud url (`s3://bucket/prefix/`, `gs://...`, `az://container/...`); `None` when
/// the url is not a cloud url.
pub fn cloud_location(url: &str) -> Option<Result<Location, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "s3" | "s3a" => "s3",
        "gs" => "gs",
        "az" | "azure" => "az",
        "file" => return None,
        other => {
            return Some(Err(format!(
                "url `{url}`: unsupported scheme `{other}://`; use s3://, gs://, az://, file:// \
                 or a path"
            )))
        }
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Some(Err(format!("url `{url}` names no bucket")));
    }
    if prefix.split('/').any(|p| p == "..") {
        return Some(Err(format!("url `{url}` must not contain `..`")));
    }
    let prefix = prefix.trim_start_matches('/');
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    Some(Ok(Location {
        scheme,
        bucket: bucket.to_string(),
        prefix,
    }))
}

/// The store settings of one source, checked against its url's scheme.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub s3: Option<S3Options>,
    pub gcs: Option<GcsOptions>,
    pub azure: Option<AzureOptions>,
}

impl StoreOptions {
    /// The settings blocks that do not belong to `scheme` (`None` for local files).
    pub fn misplaced(&self, scheme: Option<&str>) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.s3.is_some() && scheme != Some("s3") {
            out.push("s3");
        }
        if self.gcs.is_some() && scheme != Some("gs") {
            out.push("gcs");
        }
        if self.azure.is_some() && scheme != Some("az") {
            out.push("azure");
        }
        out
    }
}

fn client_options(limits: &StoreLimits, allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(limits.connect_timeout)
        .with_timeout(limits.request_timeout)
}

fn retry_config(limits: &StoreLimits) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: limits.max_retries,
        retry_timeout: limits.retry_timeout,
    }
}

/// Builds the store of a cloud location. No request is made: a store that is down fails the
/// first listing or read, not the gateway's start.
pub fn build_store(
    location: &Location,
    opts: &StoreOptions,
    limits: &StoreLimits,
) -> Result<Arc<dyn ObjectStore>, String> {
    let Location { scheme, bucket, .. } = location;
    let store: Arc<dyn ObjectStore> = match *scheme {
        "s3" => {
            let o = opts.s3.clone().unwrap_or_default();
            if o.access_key_id.is_some() != o.secret_access_key.is_some() {
                return Err(
                    "s3: give both `access_key_id` and `secret_access_key`, or neither \
                            (the AWS environment then applies)"
                        .into(),
                );
            }
            if o.session_token.is_some() && o.access_key_id.is_none() {
                return Err(
                    "s3: `session_token` needs `access_key_id` and `secret_access_key`".into(),
                );
            }
            let allow_http = o.allow_http.unwrap_or(false);
            if let Some(e) = &o.endpoint {
                check_endpoint("s3", e, allow_http)?;
            }
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_virtual_hosted_style_request(!o.path_style.unwrap_or(true))
                .with_allow_http(allow_http)
                .with_skip_signature(o.anonymous.unwrap_or(false))
                .with_retry(retry_config(limits))
                .with_client_options(client_options(limits, allow_http));
            if let Some(e) = o.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = o.region {
                b = b.with_region(r);
            }
            if let (Some(id), Some(secret)) = (o.access_key_id, o.secret_access_key) {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
            }
            if let Some(t) = o.session_token {
                b = b.with_token(t);
            }
            Arc::new(b.build().map_err(|e| format!("s3: {e}"))?)
        }
        "gs" => {
            let o = opts.gcs.clone().unwrap_or_default();
            let allow_http = o.allow_http.unwrap_or(false);
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_skip_signature(o.anonymous.unwrap_or(false))
                .with_retry(retry_config(limits))
                .with_client_options(client_options(limits, allow_http));
            if let Some(e) = &o.endpoint {
                check_endpoint("gcs", e, allow_http)?;
                b = b.with_base_url(e);
            }
            if let Some(k) = o.service_account_key {
                b = b.with_service_account_key(k);
            }
            Arc::new(b.build().map_err(|e| format!("gcs: {e}"))?)
        }
        "az" => {
            let o = opts.azure.clone().unwrap_or_default();
            let allow_http = o.allow_http.unwrap_or(false);
            let creds = [&o.access_key, &o.sas_token, &o.bearer_token]
                .iter()
                .filter(|c| c.is_some())
                .count();
            if creds > 1 {
                return Err(
                    "azure: give one of `access_key`, `sas_token` and `bearer_token`".into(),
                );
            }
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_use_emulator(o.use_emulator.unwrap_or(false))
                .with_allow_http(allow_http)
                .with_skip_signature(o.anonymous.unwrap_or(false))
                .with_retry(retry_config(limits))
                .with_client_options(client_options(limits, allow_http));
            if let Some(a) = o.account {
                b = b.with_account(a);
            }
            if let Some(e) = o.endpoint {
                check_endpoint("azure", &e, allow_http)?;
                b = b.with_endpoint(e);
            }
            if let Some(k) = o.access_key {
                b = b.with_access_key(k);
            }
            if let Some(t) = o.bearer_token {
                b = b.with_bearer_token_authorization(t);
            }
            if let Some(s) = o.sas_token {
                let pairs = url::form_urlencoded::parse(s.trim_start_matches('?').as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect::<Vec<_>>();
                if pairs.is_empty() {
                    return Err("azure: `sas_token` is empty".into());
                }
                b = b.with_sas_authorization(pairs);
            }
            Arc::new(b.build().map_err(|e| format!("azure: {e}"))?)
        }
        other => return Err(format!("unsupported scheme `{other}`")),
    };
    Ok(store)
}

fn check_endpoint(block: &str, endpoint: &str, allow_http: bool) -> Result<(), String> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| format!("{block}: endpoint `{endpoint}` is not a url: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http => Ok(()),
        "http" => Err(format!(
            "{block}: endpoint `{endpoint}` is plain http; set `allow_http: true` to allow it"
        )),
        s => Err(format!(
            "{block}: endpoint `{endpoint}` must be http(s), not `{s}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> StoreLimits {
        StoreLimits {
            max_retries: 1,
            retry_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn cloud_urls() {
        assert_eq!(cloud_location("/data"), None);
        assert_eq!(cloud_location("file:///data/"), None);
        assert_eq!(
            cloud_location("s3://lake/sales").map(|r| r.expect("ok")),
            Some(Location {
                scheme: "s3",
                bucket: "lake".into(),
                prefix: "sales/".into()
            })
        );
        assert_eq!(
            cloud_location("gs://lake/").map(|r| r.expect("ok")),
            Some(Location {
                scheme: "gs",
                bucket: "lake".into(),
                prefix: String::new()
            })
        );
        let err = |u: &str| cloud_location(u).expect("cloud").expect_err("invalid");
        assert!(err("ftp://x/").contains("unsupported scheme"));
        assert!(err("s3:///x").contains("no bucket"));
        assert!(err("s3://b/a/../c").contains(".."));
    }

    #[test]
    fn store_checks() {
        let loc = cloud_location("s3://lake/").expect("cloud").expect("ok");
        let s3 = |o: S3Options| StoreOptions {
            s3: Some(o),
            ..Default::default()
        };
        let e = build_store(
            &loc,
            &s3(S3Options {
                endpoint: Some("http://127.0.0.1:9000".into()),
                ..Default::default()
            }),
            &limits(),
        )
        .expect_err("plain http refused");
        assert!(e.contains("allow_http"), "{e}");
        let e = build_store(
            &loc,
            &s3(S3Options {
                access_key_id: Some("k".into()),
                ..Default::default()
            }),
            &limits(),
        )
        .expect_err("half credentials refused");
        assert!(e.contains("secret_access_key"), "{e}");
        build_store(
            &loc,
            &s3(S3Options {
                endpoint: Some("http://127.0.0.1:9000".into()),
                allow_http: Some(true),
                access_key_id: Some("k".into()),
                secret_access_key: Some("s".into()),
                ..Default::default()
            }),
            &limits(),
        )
        .expect("valid");
        let opts = StoreOptions {
            gcs: Some(GcsOptions::default()),
            ..Default::default()
        };
        assert_eq!(opts.misplaced(Some("s3")), vec!["gcs"]);
        assert!(opts.misplaced(Some("gs")).is_empty());
    }
}
