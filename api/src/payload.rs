//! [`JsonBody`]: a JSON request body whose errors name the field at fault.
//!
//! poem-openapi's own `Json<T>` reports a wrong type as `failed to parse "integer"`
//! without saying where. This payload parses with serde instead (through
//! `serde_path_to_error`), so an unknown field or a wrong type answers 400 with the
//! path of the field (`options.backoff.delay_ms`), while the OpenAPI document still
//! shows `T`'s schema. `T` therefore derives both `Object` (for the document) and
//! `Deserialize` (for parsing), with the same names and defaults, and
//! `deny_unknown_fields` on both.
//!
//! serde's derived structs also accept a JSON array of their fields in order, which
//! the document does not allow. So a body serde accepted is then checked against `T`'s
//! own schema (poem-openapi's parser, which wants an object where the document says
//! object, and applies the document's validators): the server accepts exactly what the
//! document describes, no more.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::error::ContentTypeError;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body parsed with serde; see the module documentation.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + ParseFromJSON + DeserializeOwned> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        let value = parse(&data)?;
        conforms::<T>(&data)?;
        Ok(JsonBody(value))
    }
}

/// Checks `data`, which serde already parsed as a `T`, against `T`'s schema.
fn conforms<T: ParseFromJSON>(data: &[u8]) -> Result<(), ApiError> {
    let json: serde_json::Value = serde_json::from_slice(data)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    match T::parse_from_json(Some(json)) {
        Ok(_) => Ok(()),
        // A value outside a validator's bounds is refused by the handler's own checks,
        // which name the whole path of the field; this check is for the shapes serde
        // lets through.
        Err(e) if e.message().contains("verification failed") => Ok(()),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body does not match the document's schema: {}",
            e.message()
        ))),
    }
}

/// Parses `data` as a `T`, naming the field at fault.
pub fn parse<T: DeserializeOwned>(data: &[u8]) -> Result<T, ApiError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request needs a JSON body"));
    }
    let mut de = serde_json::Deserializer::from_slice(data);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::bad_request(format!("the body is not valid JSON: {inner}"))
        } else {
            let message = strip_position(&inner.to_string());
            let mut field = if path == "." { String::new() } else { path };
            // serde reports a missing field at its parent: name the field itself.
            if let Some(name) = message
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next())
            {
                field = if field.is_empty() {
                    name.to_owned()
                } else {
                    format!("{field}.{name}")
                };
            }
            ApiError::validation(&field, message)
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Drops serde_json's ` at line 1 column 42`: the field path says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

impl<'a, T: Type + ParseFromJSON + DeserializeOwned> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: <Self as ParsePayload>::IS_REQUIRED,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(ct) if Self::check_content_type(ct) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(ct) => Err(ContentTypeError::NotSupported {
                content_type: ct.to_owned(),
            }
            .into()),
            None => Err(ContentTypeError::ExpectContentType.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    fn field(e: ApiError) -> String {
        match e {
            ApiError::BadRequest(b) => {
                b.0.error
                    .details
                    .and_then(|d| d["field"].as_str().map(str::to_owned))
                    .unwrap_or_default()
            }
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field(parse::<Outer>(br#"{"inner": {"n": "x"}}"#).unwrap_err()),
            "inner.n"
        );
        assert_eq!(
            field(parse::<Outer>(br#"{"inner": {"n": 1, "m": 2}}"#).unwrap_err()),
            "inner.m"
        );
        assert_eq!(
            field(parse::<Outer>(br#"{"inner": {"n": -1}}"#).unwrap_err()),
            "inner.n"
        );
        assert_eq!(
            field(parse::<Outer>(br#"{"inner": {}}"#).unwrap_err()),
            "inner.n"
        );
        assert_eq!(field(parse::<Outer>(br#"{}"#).unwrap_err()), "inner");
        assert_eq!(
            field(parse::<Outer>(br#"{"inner": {"n": 1}} x"#).unwrap_err()),
            ""
        );
        assert_eq!(field(parse::<Outer>(br#"{"inner": "#).unwrap_err()), "");
        assert!(parse::<Outer>(br#"{"inner": {"n": 1}}"#).is_ok());
    }
}

/// A JSON object of any shape in a request body (a schedule's payload template): the
/// document says `type: object`, and serde takes it as a [`serde_json::Value`]. A value
/// that is not an object is refused when parsed, naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject(pub serde_json::Value);

impl<'de> serde::Deserialize<'de> for JsonObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        Ok(Self(serde_json::Value::Object(map)))
    }
}

impl Type for JsonObject {
    const IS_REQUIRED: bool = true;
    type RawValueType = serde_json::Value;
    type RawElementValueType = serde_json::Value;

    fn name() -> std::borrow::Cow<'static, str> {
        "object".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(poem_openapi::registry::MetaSchema::new("object")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl poem_openapi::types::ParseFromJSON for JsonObject {
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
        match value {
            Some(v @ serde_json::Value::Object(_)) => Ok(Self(v)),
            other => Err(poem_openapi::types::ParseError::expected_type(
                other.unwrap_or_default(),
            )),
        }
    }
}

impl poem_openapi::types::ToJSON for JsonObject {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(self.0.clone())
    }
}
