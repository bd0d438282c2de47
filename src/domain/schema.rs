//! OpenAPI schemas of values the derive cannot describe by itself: the items of id lists and
//! of avatar byte arrays. Used as `value_type`s, inlined.

use utoipa::{
    openapi::{
        schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type},
        RefOr, Schema,
    },
    PartialSchema, ToSchema,
};

/// An id of an app user, organization or event: an integer of at least 1.
pub struct PositiveId;

impl PartialSchema for PositiveId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .into()
    }
}

impl ToSchema for PositiveId {}

/// One byte of an image: an integer from 0 to 255.
pub struct Byte;

impl PartialSchema for Byte {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(0))
            .maximum(Some(255))
            .into()
    }
}

impl ToSchema for Byte {}
