//! What an AWS SDK error means, for S3 repositories and KMS key slots alike.
//!
//! The SDK reports three different situations through one `SdkError`, and
//! the user must act differently on each:
//! - no credentials could be loaded: its text is the whole provider chain's
//!   report (every provider, every reason), which is pages of noise; the
//!   user needs to hear which ways of giving credentials pgsnap takes;
//! - the service never answered (endpoint unreachable, timeout) or failed
//!   on its side (HTTP 5xx, throttling): nothing is known about the request;
//! - the service answered and refused (a 4xx error code): the request
//!   itself was wrong (unknown bucket, key not allowed, wrong ciphertext).
//!
//! KMS slots depend on the difference: only a refusal may read as a wrong
//! key (see `Credentials::unlock`).

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::error::Error;

/// The ways of giving credentials that the SDK's default chain (with the
/// features this crate enables: profiles with SSO and `credential_process`)
/// looks at, in its order.
const CREDENTIAL_WAYS: &str = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
     AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE naming a profile in ~/.aws/config or \
     ~/.aws/credentials (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), or AWS_WEB_IDENTITY_TOKEN_FILE \
     with AWS_ROLE_ARN, or run with an ECS task role or an EC2 instance role";

/// `PGSNAP_AWS_TIMEOUT`: seconds an S3 or KMS request may wait for the
/// first byte of its answer, each attempt (the SDK retries twice).
pub const TIMEOUT_VAR: &str = "PGSNAP_AWS_TIMEOUT";

/// The SDK's configuration from its default chain (environment, profile,
/// roles), with time limits. The SDK sets none by default: an endpoint that
/// takes the connection and never answers (a stalled proxy, a stopped
/// server) would hold a backup, and its database snapshot, forever.
/// Streamed bodies are covered by the SDK's stalled-stream protection; this
/// bounds the wait for an answer to start. `default_wait` fits the service:
/// an S3 part upload is sent within that time too.
pub(crate) async fn sdk_config(
    default_wait: std::time::Duration,
) -> Result<aws_config::SdkConfig, Error> {
    let wait = match std::env::var(TIMEOUT_VAR) {
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(secs) if (1..=3600).contains(&secs) => std::time::Duration::from_secs(secs),
            _ => {
                return Err(Error::Usage(format!(
                    "{TIMEOUT_VAR} must be a number of seconds between 1 and 3600, not `{v}`"
                )))
            }
        },
        Err(_) => default_wait,
    };
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(10).min(wait))
        .read_timeout(wait)
        .build();
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await)
}

/// One line describing an SDK error: the service's code and message, or why
/// the request never got an answer. Never contains credentials.
pub(crate) fn sdk_error_text<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let s = match e {
        // An answer without a body (HEAD requests' errors): its status is
        // all there is to say.
        SdkError::ServiceError(se) => {
            code_and_message(se.err()).unwrap_or_else(|| status_text(se.raw().status().as_u16()))
        }
        // No answer: the causes, each once (the SDK's own Display of
        // these is terse and its Debug is pages long), and what to check.
        SdkError::DispatchFailure(_) => format!(
            "{} (the service could not be reached: check the endpoint (AWS_ENDPOINT_URL, if \
             set), the region and the network)",
            error_chain_text(e)
        ),
        _ => error_chain_text(e),
    };
    s.replace(['\n', '\r'], " ")
}

/// An HTTP error status in words, with what to check.
fn status_text(status: u16) -> String {
    match status {
        403 => "HTTP 403 Forbidden: access denied (check the AWS credentials, and that their \
                policy and the bucket's allow this request)"
            .into(),
        404 => "HTTP 404 Not Found".into(),
        301 | 307 | 400 => format!(
            "HTTP {status}: the request was refused (check the region (AWS_REGION) and the \
             bucket's name)"
        ),
        s => format!("HTTP {s}"),
    }
}

/// `e` and its sources on one line, each text once.
fn error_chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = x.source();
    }
    parts.join(": ").replace(['\n', '\r'], " ")
}

/// When `e` failed because no AWS credentials could be loaded: the error to
/// report instead of the SDK's, naming `service` (what the credentials were
/// for) and how to give credentials. `None` for every other failure.
pub(crate) fn credentials_error<E, R>(service: &str, e: &SdkError<E, R>) -> Option<Error>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    // Credentials are resolved before a request is sent, so their errors
    // arrive as a dispatch or construction failure, with the provider's
    // error somewhere down the source chain.
    if matches!(e, SdkError::ServiceError(_) | SdkError::ResponseError(_)) {
        return None;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = src {
        if let Some(ce) = x.downcast_ref::<CredentialsError>() {
            return Some(Error::AwsCredentials(match ce {
                // No provider had any: the chain's report lists every
                // provider it tried, which says nothing the ways below do not.
                CredentialsError::CredentialsNotLoaded(_) => {
                    format!("no AWS credentials found for {service}: {CREDENTIAL_WAYS}")
                }
                // A provider was configured and failed (an expired SSO
                // session, a failing credential_process, STS refusing the
                // role): its own reason is what the user needs.
                _ => format!(
                    "the AWS credentials for {service} could not be loaded: {}",
                    error_chain_text(ce)
                ),
            }));
        }
        // The SDK's identity cache gives up on a slow provider (a
        // metadata endpoint that does not answer) with a private error type.
        if x.to_string().starts_with("identity resolver timed out") {
            return Some(Error::AwsCredentials(format!(
                "the AWS credentials for {service} could not be loaded: {x} (an unreachable \
                 instance or container metadata endpoint?); {CREDENTIAL_WAYS}"
            )));
        }
        src = x.source();
    }
    None
}

/// True when the service answered `e` and refused the request on its
/// merits (a 4xx error other than throttling). False when it never answered
/// (unreachable, timed out, no credentials, an unreadable answer) or failed
/// on its side (5xx, throttling): then nothing is known about the request.
pub(crate) fn is_refusal<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let SdkError::ServiceError(se) = e else {
        return false;
    };
    let unavailable = matches!(
        se.err().code(),
        Some(
            "ThrottlingException"
                | "Throttling"
                | "LimitExceededException"
                | "RequestLimitExceeded"
                | "SlowDown"
                | "DependencyTimeoutException"
                | "KMSInternalException"
                | "InternalFailure"
                | "ServiceUnavailable"
        )
    );
    !unavailable && se.raw().status().as_u16() < 500
}

/// When the service refused `e` as not allowed (403, AccessDenied): the
/// refusal's own code and message, without the generic advice that
/// [`sdk_error_text`] gives a bare 403 (which speaks of buckets).
pub(crate) fn access_denied_text<E: ProvideErrorMetadata>(
    e: &SdkError<E, HttpResponse>,
) -> Option<String> {
    let SdkError::ServiceError(se) = e else {
        return None;
    };
    let err = se.err();
    let denied = matches!(err.code(), Some("AccessDeniedException" | "AccessDenied"))
        || se.raw().status().as_u16() == 403;
    if !denied {
        return None;
    }
    let text = code_and_message(err).unwrap_or_else(|| "HTTP 403 Forbidden".into());
    Some(text.replace(['\n', '\r'], " "))
}

/// A service's refusal as its error code and message say it (`None`
/// without a code: an answer without a body).
fn code_and_message<E: ProvideErrorMetadata>(err: &E) -> Option<String> {
    let code = err.code()?;
    Some(match err.message() {
        Some(m) if !m.is_empty() => format!("{code}: {m}"),
        _ => code.to_string(),
    })
}

/// True when KMS refused `e` because of the key's state (disabled, pending
/// deletion or import, its custom key store disconnected): the key may be
/// the right one, and enabling it is what helps.
pub(crate) fn is_key_state_refusal<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let SdkError::ServiceError(se) = e else {
        return false;
    };
    matches!(
        se.err().code(),
        Some("DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException")
    )
}
