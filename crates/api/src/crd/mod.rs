//! Placeholder for the CustomResourceDefinition schema machinery (replaced by the real module).

/// A compiled structural schema.
#[derive(Debug, Clone)]
pub struct Structural;

/// One Table column of a custom resource.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct ColumnDef {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
}

impl Structural {
    /// Placeholder.
    pub fn new(
        _: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    ) -> Self {
        Structural
    }
}
/// Placeholder.
pub fn to_ty(
    _: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) -> crate::schema::Ty {
    crate::schema::Ty::any()
}
/// Placeholder.
pub fn columns(
    _: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion,
) -> Vec<ColumnDef> {
    Vec::new()
}
impl Structural {
    /// Placeholder.
    pub fn validate(&self, _: &serde_json::Value) -> Vec<crate::strategy::FieldError> {
        Vec::new()
    }
    /// Placeholder.
    pub fn default(&self, _: &mut serde_json::Value) {}
    /// Placeholder.
    pub fn prune(&self, _: &mut serde_json::Value) {}
}
/// Placeholder.
pub fn validate_crd(
    _: &serde_json::Value,
    _: Option<&serde_json::Value>,
) -> Vec<crate::strategy::FieldError> {
    Vec::new()
}
/// Placeholder.
pub fn default_crd(_: &mut serde_json::Value) {}
/// Placeholder.
pub fn cells(_: &[ColumnDef], _: &serde_json::Value, _: i64) -> Vec<serde_json::Value> {
    Vec::new()
}
