//! The vendors' own client libraries, in virtualenvs made once per target directory, so
//! wire formats and signatures are proven by their code rather than by our reading of it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Tests run on several threads; two of them must not build one virtualenv at once.
static BUILDING: Mutex<()> = Mutex::new(());

/// A virtualenv named `name` in which `import` succeeds, `packages` installed if not.
pub fn python_with(name: &str, import: &str, packages: &[&str]) -> PathBuf {
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin/python");
    let ready = python.exists() && Command::new(&python).args(["-c", import]).status().is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 -m venv");
        assert!(made.success(), "could not create the virtualenv {name}");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages)
            .status()
            .expect("pip");
        assert!(pip.success(), "could not install {packages:?}");
    }
    python
}

pub fn python_with_twilio() -> PathBuf {
    python_with("twilio-venv", "import twilio", &["twilio==9.13.0"])
}

pub fn python_with_fusionauth() -> PathBuf {
    python_with("fusionauth-venv", "import fusionauth.fusionauth_client", &["fusionauth-client==1.69.0"])
}

pub fn python_with_authlib() -> PathBuf {
    python_with("authlib-venv", "import authlib, requests", &["authlib==1.6.5", "requests"])
}

/// `X-Twilio-Signature` for a request to `url` with these form fields, as the official
/// `twilio` package's `RequestValidator` computes it.
pub async fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let python = tokio::task::spawn_blocking(python_with_twilio).await.expect("virtualenv");
    let fields: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
    let script = "import json, sys\n\
                  from twilio.request_validator import RequestValidator\n\
                  token, url, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n\
                  print(RequestValidator(token).compute_signature(url, params))";
    let out = tokio::process::Command::new(python)
        .args(["-c", script, auth_token, url, &serde_json::Value::Object(fields).to_string()])
        .output()
        .await
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

pub fn python_with_plivo() -> PathBuf {
    python_with("plivo-venv", "import plivo.utils.signature_v3", &["plivo==4.63.0"])
}

/// `X-Plivo-Signature-V3` for a POST to `url` with these form fields and `nonce`, as the
/// official `plivo` package builds it (`construct_post_url`, `get_signature_v3`: what its
/// `validate_v3_signature` accepts).
pub async fn plivo_signature(auth_token: &str, url: &str, nonce: &str, params: &[(String, String)]) -> String {
    let python = tokio::task::spawn_blocking(python_with_plivo).await.expect("virtualenv");
    let fields: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
    let script = "import json, sys\n\
                  from plivo.utils.signature_v3 import construct_post_url, get_signature_v3, validate_v3_signature\n\
                  token, url, nonce, params = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])\n\
                  sig = get_signature_v3(token.encode(), construct_post_url(url, params).decode(), nonce.encode()).decode()\n\
                  assert validate_v3_signature('POST', url, nonce, token, sig, params)\n\
                  print(sig)";
    let out = tokio::process::Command::new(python)
        .args(["-c", script, auth_token, url, nonce, &serde_json::Value::Object(fields).to_string()])
        .output()
        .await
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}
