//! A cookie-keeping HTTP client that fills in the hosted pages' forms the way a browser
//! would (Chromium itself runs in `browser`).

use std::collections::HashMap;

use tessera_testkit::TestApp;

/// A browser: keeps cookies, does not follow redirects.
pub struct Browser<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub text: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        tessera_providers::install_tls();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { app, http, cookies: HashMap::new() }
    }

    pub fn request(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.app.url(path))
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// A cookie this browser holds.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    pub async fn go(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self.cookie_header();
        let resp = req.header("Cookie", cookie).send().await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k)
            } else {
                self.cookies.insert(k.into(), v.into())
            };
        }
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        Page { status: resp.status().as_u16(), location, text: resp.text().await.unwrap() }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let url = if path.starts_with("http") { path.to_owned() } else { self.app.url(path) };
        self.go(self.http.get(url)).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.go(self.http.post(self.app.url(path)).form(form)).await
    }

    /// Signs in as ann@example.com (password "correct horse") on the way to the account
    /// page: the form's CSRF token, and the page the password leads to.
    pub async fn sign_in_to_account(&mut self) -> (String, Page) {
        let form = self.get("/login?return_to=%2Faccount").await;
        let (csrf, signin) = (field(&form.text, "csrf"), field(&form.text, "signin"));
        let fields = [
            ("csrf", csrf.as_str()),
            ("signin", signin.as_str()),
            ("login_id", "ann@example.com"),
            ("password", "correct horse"),
        ];
        let after = self.post("/login", &fields).await;
        (csrf, after)
    }

    /// Enters `code` on the second-step page `page`: its form carries the sign-in's id
    /// and the CSRF token, nothing more.
    pub async fn second_step(&mut self, csrf: &str, page: &Page, code: &str) -> Page {
        let signin = field(&page.text, "signin");
        let fields = [("csrf", csrf), ("signin", signin.as_str()), ("code", code)];
        self.post("/login/two-factor", &fields).await
    }
}

/// The names of a page's hidden inputs, in order.
pub fn hidden_fields(html: &str) -> Vec<String> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next().map(str::to_owned))
        .collect()
}

/// The form action that sends a code to a phone, as a browser would post it.
pub fn send_action(html: &str) -> String {
    let marker = "action=\"/login/send";
    let start = html.find(marker).map(|i| i + "action=\"".len()).unwrap_or_else(|| panic!("no send form in {html}"));
    html[start..].split('"').next().unwrap().replace("&#x2f;", "/").replace("&amp;", "&")
}

pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no {name} in {html}"));
    // The attribute as a browser reads it (the templates escape `/` too).
    html[start..].split('"').next().unwrap().replace("&#x2f;", "/").replace("&amp;", "&")
}

/// The authenticator key an enrolment page shows for typing in.
pub fn shown_key(html: &str) -> String {
    let marker = "Key: <code>";
    let start = html.find(marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no key in {html}"));
    html[start..].split('<').next().unwrap().to_owned()
}

/// Where a page's first link leads, as a browser reads it.
pub fn link(html: &str) -> String {
    let marker = "<a href=\"";
    let start = html.find(marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no link in {html}"));
    html[start..].split('"').next().unwrap().replace("&#x2f;", "/").replace("&amp;", "&")
}
