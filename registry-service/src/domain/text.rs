//! Free-text inputs: names, labels, descriptions, user names and passwords,
//! each with the bounds it is stored under.

use secrecy::SecretString;

use super::FieldViolation;

/// Trims `raw` and checks it is not empty. At most `max` characters as
/// sent, surrounding white space included: the bound the API documents,
/// which a schema can state.
pub fn required(field: &'static str, raw: &str, max: usize) -> Result<String, FieldViolation> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    optional(field, raw, max)
}

/// Like [`required`] but an empty value is allowed (and stays empty).
pub fn optional(field: &'static str, raw: &str, max: usize) -> Result<String, FieldViolation> {
    if raw.chars().count() > max {
        return Err(too_long(field, max));
    }
    bounded(field, raw.trim(), max)
}

fn too_long(field: &'static str, max: usize) -> FieldViolation {
    FieldViolation::new(field, format!("must be at most {max} characters"))
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<String, FieldViolation> {
    if value.chars().count() > max {
        return Err(too_long(field, max));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// Seed 003's `merchantId`: 1 to 64 printable ASCII characters without
/// spaces (the partner's own identifier); empty means none.
pub fn merchant_id(raw: Option<&str>) -> Result<Option<String>, FieldViolation> {
    match raw {
        None | Some("") => Ok(None),
        Some(id) => merchant_filter(id).map(Some),
    }
}

/// A `merchantId` to list by: as [`merchant_id`], but never empty.
pub fn merchant_filter(raw: &str) -> Result<String, FieldViolation> {
    if (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(raw.to_owned())
    } else {
        Err(FieldViolation::new(
            "merchant_id",
            "must be 1 to 64 printable ASCII characters without spaces",
        ))
    }
}

/// A notification type's name: a stable machine-readable key.
pub fn type_name(raw: &str) -> Result<String, FieldViolation> {
    let name = required("name", raw, 100)?;
    if name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        Ok(name)
    } else {
        Err(FieldViolation::new(
            "name",
            "must contain only lowercase letters, digits, '.', '_' and '-'",
        ))
    }
}

/// Basic-auth credentials for a callback. The user name cannot contain ':'
/// (RFC 7617); the password is kept secret from `Debug` and logs.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_name: String,
    pub password: Option<SecretString>,
}

impl Credentials {
    /// Parses the optional pair; a password without a user name is refused.
    pub fn parse(
        user_name: Option<&str>,
        password: Option<&str>,
    ) -> Result<Option<Self>, FieldViolation> {
        let user_name = user_name.filter(|u| !u.is_empty());
        let password = password.filter(|p| !p.is_empty());
        match (user_name, password) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(FieldViolation::new(
                "callback_password",
                "requires callback_user_name",
            )),
            (Some(user), password) => {
                if user.contains(':') {
                    return Err(FieldViolation::new(
                        "callback_user_name",
                        "must not contain ':'",
                    ));
                }
                let user_name = bounded("callback_user_name", user, 256)?;
                if password.is_some_and(|p| p.chars().count() > 1024) {
                    return Err(FieldViolation::new(
                        "callback_password",
                        "must be at most 1024 characters",
                    ));
                }
                Ok(Some(Self {
                    user_name,
                    password: password.map(|p| SecretString::from(p.to_owned())),
                }))
            }
        }
    }
}

/// A payload schema as sent: `None` (no schema), or a JSON Schema document
/// that compiles, kept as compact JSON.
pub fn payload_schema(
    field: &'static str,
    raw: Option<&str>,
) -> Result<Option<String>, FieldViolation> {
    raw.map(|text| {
        service_kit::payload_schema::PayloadSchema::compile(text)
            .map(|schema| schema.to_text())
            .map_err(|rule| FieldViolation::new(field, rule))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_needs_a_user_name() {
        let err = Credentials::parse(None, Some("pw")).unwrap_err();
        assert_eq!(err.field, "callback_password");
        assert!(Credentials::parse(Some("u"), Some("pw")).unwrap().is_some());
        assert!(Credentials::parse(Some("u"), None).unwrap().is_some());
        assert!(Credentials::parse(None, None).unwrap().is_none());
        assert!(Credentials::parse(Some("a:b"), None).is_err());
    }

    #[test]
    fn names_are_bounded_and_clean() {
        assert!(required("name", "  ", 10).is_err());
        assert!(required("name", "abcdefghijk", 10).is_err());
        assert!(required("name", "a\u{0}b", 10).is_err());
        assert_eq!(required("name", " acme ", 10).unwrap(), "acme");
        assert!(type_name("Order.Created").is_err());
        assert!(type_name("order.created_v2").is_ok());
    }
}
