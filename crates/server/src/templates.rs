//! The hosted pages' templates (MiniJinja, HTML auto-escaped). The built-in ones are
//! compiled into the binary; `pages_template_dir` may hold files with the same names
//! that replace them, which is how a deployment themes its pages. Every template is
//! compiled at start, so a broken theme stops the server with the file's name instead
//! of failing someone's sign-in later.

use std::path::Path;

use minijinja::Environment;

/// Every page template, as shipped. A theme replaces any of these by name; `base.html`
/// is the layout the others extend, so most themes replace only that.
const BUILT_IN: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("two_factor.html", include_str!("../templates/two_factor.html")),
    ("enroll.html", include_str!("../templates/enroll.html")),
    ("enroll_phone_code.html", include_str!("../templates/enroll_phone_code.html")),
    ("recovery_codes.html", include_str!("../templates/recovery_codes.html")),
    ("account.html", include_str!("../templates/account.html")),
    ("message.html", include_str!("../templates/message.html")),
    ("logout.html", include_str!("../templates/logout.html")),
];

#[derive(Debug, thiserror::Error)]
#[error("page templates: {0}")]
pub struct TemplateError(String);

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, replaced by those in `dir` where it has a file of the
    /// same name. A file that replaces nothing is an error: it is a typo or a template
    /// from another version, and silently ignoring it would hide the theme.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut sources: Vec<(String, String)> =
            BUILT_IN.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned())).collect();
        if let Some(dir) = dir {
            let entries =
                std::fs::read_dir(dir).map_err(|e| TemplateError(format!("cannot read {}: {e}", dir.display())))?;
            for entry in entries {
                let path = entry.map_err(|e| TemplateError(format!("{}: {e}", dir.display())))?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
                if path.is_dir() || name.starts_with('.') {
                    continue;
                }
                let Some(slot) = sources.iter_mut().find(|(n, _)| *n == name) else {
                    let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                    return Err(TemplateError(format!(
                        "{} replaces no page; the pages are {}",
                        path.display(),
                        known.join(", ")
                    )));
                };
                slot.1 = std::fs::read_to_string(&path)
                    .map_err(|e| TemplateError(format!("cannot read {}: {e}", path.display())))?;
            }
        }
        let mut env = Environment::new();
        for (name, text) in sources {
            env.add_template_owned(name.clone(), text).map_err(|e| TemplateError(describe(&name, &e)))?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| TemplateError(describe(name, &e)))?;
        template.render(ctx).map_err(|e| TemplateError(describe(name, &e)))
    }
}

fn describe(name: &str, e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!("{name} line {line}: {e}"),
        None => format!("{name}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_templates_compile() {
        assert!(Templates::load(None).is_ok());
    }

    #[test]
    fn values_are_escaped() {
        let t = Templates::load(None).unwrap();
        let html =
            t.render("message.html", minijinja::context! { title => "Hi", message => "<script>x</script>" }).unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
    }

    fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-theme-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_theme_replaces_pages_by_name() {
        let dir = dir_with(&[("message.html", "<p class=brand>{{ message }}</p>")]);
        let t = Templates::load(Some(&dir)).unwrap();
        assert_eq!(t.render("message.html", minijinja::context! { message => "ok" }).unwrap(), "<p class=brand>ok</p>");
        assert!(t.render("login.html", minijinja::context! {}).unwrap().contains("Sign in"), "others stay built in");
    }

    #[test]
    fn a_broken_or_unknown_theme_file_is_named() {
        let broken = dir_with(&[("login.html", "{% if %}")]);
        let e = Templates::load(Some(&broken)).err().unwrap().to_string();
        assert!(e.contains("login.html line 1"), "{e}");
        let stray = dir_with(&[("logn.html", "x")]);
        let e = Templates::load(Some(&stray)).err().unwrap().to_string();
        assert!(e.contains("logn.html replaces no page"), "{e}");
        let e = Templates::load(Some(Path::new("/nonexistent/theme"))).err().unwrap().to_string();
        assert!(e.contains("cannot read /nonexistent/theme"), "{e}");
    }
}
