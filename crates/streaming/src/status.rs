//! How the exit of an exec reaches the client on the error stream, as kubelet encodes it: a
//! `metav1.Status` JSON for `v4.channel.k8s.io` and later, plain text of failures before that.

use serde_json::json;

use crate::backend::BackendError;

/// The protocol's way of reporting the end of an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusFormat {
    /// `v4`/`v5`: a Status JSON for success and failure alike.
    Json,
    /// `channel.k8s.io`, v2, v3: the error text on failure, nothing on success.
    Text,
}

/// The bytes written on the error stream for `outcome`; empty means write nothing.
pub(crate) fn encode(format: StatusFormat, outcome: &Result<i32, BackendError>) -> Vec<u8> {
    let status = match outcome {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => {
            let cause = format!("error executing command in container: {e}");
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {cause}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": cause}]},
                "code": 500,
            })
        }
    };
    match format {
        StatusFormat::Json => status.to_string().into_bytes(),
        StatusFormat::Text if matches!(outcome, Ok(0)) => Vec::new(),
        StatusFormat::Text => status["message"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn exit_codes_as_kubelet_reports_them() {
        assert_eq!(
            parse(&encode(StatusFormat::Json, &Ok(0))),
            json!({"metadata": {}, "status": "Success"})
        );
        let s = parse(&encode(StatusFormat::Json, &Ok(3)));
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        let s = parse(&encode(
            StatusFormat::Json,
            &Err(BackendError("boom".into())),
        ));
        assert_eq!(s["reason"], "InternalError");
        assert_eq!(s["code"], 500);
        assert!(s["message"].as_str().unwrap().contains("boom"));
    }

    #[test]
    fn text_protocols_say_nothing_on_success() {
        assert!(encode(StatusFormat::Text, &Ok(0)).is_empty());
        let text = String::from_utf8(encode(StatusFormat::Text, &Ok(2))).unwrap();
        assert!(text.contains("non-zero exit code"), "{text}");
    }
}
