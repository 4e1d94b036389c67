//! The `recover` subcommand: asks a running server to reconcile with GitHub's delivery log
//! through its admin API (`POST /api/v1/admin/recover`, then `GET .../{run_id}` with `--wait`),
//! so the run happens where the GitHub credentials, the store and the one-runner lease are.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cli::RecoverArgs;
use crate::error::ServerError;

/// The server's answer.
#[derive(Debug, Clone)]
pub struct RecoverResult {
    /// HTTP status of the last call.
    pub status: u16,
    /// Its body.
    pub body: String,
}

/// The JSON body of `args`.
pub fn request_body(args: &RecoverArgs) -> Value {
    let mut body = Map::new();
    if let Some(since) = &args.since {
        body.insert("since".into(), json!(since));
    }
    if let Some(until) = &args.until {
        body.insert("until".into(), json!(until));
    }
    if !args.hooks.is_empty() {
        body.insert("hooks".into(), json!(args.hooks));
    }
    if let Some(mode) = &args.mode {
        body.insert("mode".into(), json!(mode));
    }
    if args.dry_run {
        body.insert("dry_run".into(), json!(true));
    }
    Value::Object(body)
}

/// Starts a run on the server at `base` with `token`; with `--wait`, polls it until it ends.
pub async fn recover(
    base: &str,
    token: Option<&str>,
    args: &RecoverArgs,
) -> Result<RecoverResult, ServerError> {
    let client = reqwest::Client::new();
    let call = |request: reqwest::RequestBuilder| async {
        let request = match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| ServerError::Usage(format!("cannot reach {base}: {e}")))?;
        let status = response.status().as_u16();
        Ok::<_, ServerError>(RecoverResult {
            status,
            body: response.text().await.unwrap_or_default(),
        })
    };
    let url = format!("{}/api/v1/admin/recover", base.trim_end_matches('/'));
    let started = call(client.post(&url).json(&request_body(args))).await?;
    if !args.wait || started.status != 202 {
        return Ok(started);
    }
    let run_id = serde_json::from_str::<Value>(&started.body)
        .ok()
        .and_then(|v| v["run_id"].as_str().map(str::to_owned))
        .ok_or_else(|| ServerError::Usage("the server answered without a run_id".into()))?;
    loop {
        let run = call(client.get(format!("{url}/{run_id}"))).await?;
        let status = serde_json::from_str::<Value>(&run.body)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_owned));
        if run.status != 200
            || matches!(
                status.as_deref(),
                Some("succeeded" | "failed" | "interrupted")
            )
        {
            return Ok(run);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_given_fields_are_sent() {
        assert_eq!(request_body(&RecoverArgs::default()), json!({}));
        let args = RecoverArgs {
            hooks: vec!["app".into()],
            mode: Some("redeliver".into()),
            dry_run: true,
            ..RecoverArgs::default()
        };
        assert_eq!(
            request_body(&args),
            json!({"hooks": ["app"], "mode": "redeliver", "dry_run": true})
        );
    }
}
