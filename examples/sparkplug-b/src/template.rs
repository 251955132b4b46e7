//! Templates (datatype 19): user-defined types, as a JSON object with their member
//! metrics and parameters decoded like any other value.

use crate::proto::{Metric, Parameter, Template};
use crate::value::{self, obj, opt_str, DataType, Val};

/// `{"template_ref", "version", "is_definition", "metrics": [..], "parameters": [..]}`.
/// A definition (in an NBIRTH) has no `template_ref`; an instance names its definition.
pub fn template(t: Template) -> Result<Val, String> {
    let metrics = t.metrics.into_iter().map(member);
    let parameters = t.parameters.into_iter().map(parameter);
    Ok(obj([
        ("template_ref", opt_str(t.template_ref)),
        ("version", opt_str(t.version)),
        ("is_definition", Val::Bool(t.is_definition.unwrap_or(false))),
        ("metrics", Val::Arr(metrics.collect::<Result<_, _>>()?)),
        (
            "parameters",
            Val::Arr(parameters.collect::<Result<_, _>>()?),
        ),
    ]))
}

/// A member metric: `name`, `datatype` and `value` always, the other fields only when
/// the member has them. Members are named, never aliased, so nothing is looked up.
fn member(m: Metric) -> Result<Val, String> {
    let name = m.name.clone().unwrap_or_default();
    let datatype = m.datatype.map(DataType::from_code).transpose()?;
    let is_null = m.is_null == Some(true);
    let v = value::metric_value(datatype, is_null, m.value)
        .map_err(|e| format!("template member {name:?}: {e}"))?;
    let mut members = vec![
        ("name", opt_str(m.name)),
        (
            "datatype",
            datatype.map_or(Val::Null, |t| Val::Str(t.name().into())),
        ),
        ("value", v),
    ];
    let optional = [
        m.alias.map(|a| ("alias", Val::U64(a))),
        m.timestamp.map(|ts| ("timestamp", Val::U64(ts))),
        m.is_historical.map(|b| ("is_historical", Val::Bool(b))),
        m.is_transient.map(|b| ("is_transient", Val::Bool(b))),
        m.metadata.map(|md| ("metadata", value::metadata(md))),
    ];
    members.extend(optional.into_iter().flatten());
    if let Some(p) = m.properties {
        members.push(("properties", value::properties(p)?));
    }
    Ok(obj(members))
}

/// `{"name", "type", "value"}`; a parameter without a value (usual in a definition)
/// has `value` null.
fn parameter(p: Parameter) -> Result<Val, String> {
    let name = p.name.unwrap_or_default();
    let datatype = p.r#type.map(DataType::from_code).transpose()?;
    let v = match (p.value, datatype) {
        (None, _) => Ok(Val::Null),
        (Some(v), Some(t)) => value::typed(t, v.into()),
        (Some(v), None) => value::untyped(v.into()),
    }
    .map_err(|e| format!("template parameter {name:?}: {e}"))?;
    Ok(obj([
        ("name", Val::Str(name)),
        (
            "type",
            datatype.map_or(Val::Null, |t| Val::Str(t.name().into())),
        ),
        ("value", v),
    ]))
}
