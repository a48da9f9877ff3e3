//! The session's catalog: tables and views declared with DDL.
//!
//! Names live in Flink's `default_catalog.default_database`; a qualified
//! name is accepted when it names that database. Names are case-sensitive.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use sqlparser::ast::{Ident, ObjectName, Query};

use crate::SqlError;
use crate::parser::{ColumnDefinition, ColumnKind, CreateTable, WatermarkDefinition};

pub const DEFAULT_CATALOG: &str = "default_catalog";
pub const DEFAULT_DATABASE: &str = "default_database";

/// A table declared with CREATE TABLE.
#[derive(Debug, Clone)]
pub struct CatalogTable {
    pub name: String,
    pub columns: Vec<ColumnDefinition>,
    pub watermark: Option<WatermarkDefinition>,
    pub primary_key: Vec<String>,
    /// `PARTITIONED BY (...)` columns, in the declared order.
    pub partition_keys: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
    /// The physical columns: what the connector reads and writes.
    pub physical_schema: SchemaRef,
}

/// A `METADATA` column as the connector is asked to fill it.
#[derive(Debug, Clone)]
pub struct MetadataField {
    pub name: String,
    /// The connector's key: `FROM 'key'`, else the column's name.
    pub key: String,
    pub field: Field,
    /// `VIRTUAL`: only read. A persisted one is also written by INSERT.
    pub is_virtual: bool,
}

impl CatalogTable {
    pub fn try_new(definition: CreateTable) -> Result<Self, SqlError> {
        let name = table_name(&definition.name)?;
        let mut seen = std::collections::HashSet::new();
        for column in &definition.columns {
            if !seen.insert(column.name.value.as_str()) {
                return Err(SqlError::Plan {
                    message: format!(
                        "column '{}' is declared twice in table '{name}'",
                        column.name.value
                    ),
                    position: Some(column.position),
                });
            }
        }
        let fields: Vec<Field> = definition
            .columns
            .iter()
            .filter_map(|c| match &c.kind {
                // Flink's primary key columns are NOT NULL.
                ColumnKind::Physical(ty) => {
                    let in_key = definition
                        .primary_key
                        .iter()
                        .any(|k| k.value == c.name.value);
                    Some(Field::new(
                        &c.name.value,
                        ty.data_type.clone(),
                        ty.nullable && !in_key,
                    ))
                }
                _ => None,
            })
            .collect();
        if let Some(w) = &definition.watermark
            && !seen.contains(w.column.value.as_str())
        {
            return Err(SqlError::Plan {
                message: format!(
                    "the watermark column '{}' is not a column of table '{name}'",
                    w.column.value
                ),
                position: Some(w.position),
            });
        }
        for key in &definition.primary_key {
            if !seen.contains(key.value.as_str()) {
                return Err(SqlError::Plan {
                    message: format!(
                        "the primary key column '{}' is not a column of table '{name}'",
                        key.value
                    ),
                    position: None,
                });
            }
        }
        let mut partition_keys: Vec<String> = Vec::new();
        for key in &definition.partitioned_by {
            let physical = definition
                .columns
                .iter()
                .any(|c| c.name.value == key.value && matches!(c.kind, ColumnKind::Physical(_)));
            if !physical {
                return Err(SqlError::Plan {
                    message: format!(
                        "the partition column '{}' is not a physical column of table '{name}'",
                        key.value
                    ),
                    position: None,
                });
            }
            if partition_keys.contains(&key.value) {
                return Err(SqlError::Plan {
                    message: format!(
                        "the partition column '{}' is listed twice in table '{name}'",
                        key.value
                    ),
                    position: None,
                });
            }
            partition_keys.push(key.value.clone());
        }
        Ok(Self {
            name,
            columns: definition.columns,
            watermark: definition.watermark,
            primary_key: definition
                .primary_key
                .into_iter()
                .map(|i| i.value)
                .collect(),
            partition_keys,
            options: definition.options.into_iter().collect(),
            comment: definition.comment,
            physical_schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The metadata columns in declaration order.
    pub fn metadata_fields(&self) -> Vec<MetadataField> {
        self.columns
            .iter()
            .filter_map(|c| match &c.kind {
                ColumnKind::Metadata {
                    data_type,
                    key,
                    is_virtual,
                } => Some(MetadataField {
                    name: c.name.value.clone(),
                    key: key.clone().unwrap_or_else(|| c.name.value.clone()),
                    field: Field::new(&c.name.value, data_type.data_type.clone(), true),
                    is_virtual: *is_virtual,
                }),
                _ => None,
            })
            .collect()
    }

    /// What a scan of the table reads: the physical columns, then the
    /// metadata columns.
    pub fn read_schema(&self) -> SchemaRef {
        let metadata = self.metadata_fields();
        if metadata.is_empty() {
            return Arc::clone(&self.physical_schema);
        }
        let fields = self
            .physical_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .chain(metadata.into_iter().map(|m| m.field));
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    }

    /// What an INSERT into the table writes, in declaration order: the
    /// physical columns and the persisted (not `VIRTUAL`) metadata columns,
    /// as in Flink.
    pub fn write_schema(&self) -> SchemaRef {
        let fields = self.columns.iter().filter_map(|c| match &c.kind {
            ColumnKind::Physical(_) => self
                .physical_schema
                .field_with_name(&c.name.value)
                .ok()
                .cloned(),
            ColumnKind::Metadata {
                data_type,
                is_virtual: false,
                ..
            } => Some(Field::new(&c.name.value, data_type.data_type.clone(), true)),
            _ => None,
        });
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    }

    /// True when reading needs more than the physical columns as stored.
    pub fn has_computed_columns(&self) -> bool {
        self.columns
            .iter()
            .any(|c| !matches!(c.kind, ColumnKind::Physical(_)))
    }
}

/// A view declared with CREATE VIEW; planned again each time it is used.
#[derive(Debug, Clone)]
pub struct CatalogView {
    pub name: String,
    pub columns: Vec<Ident>,
    pub query: Box<Query>,
}

/// Tables and views of a session.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, Arc<CatalogTable>>,
    views: BTreeMap<String, Arc<CatalogView>>,
}

/// The object name as the catalog keys it: the last part, after checking
/// that any qualifier names the default catalog and database.
pub fn table_name(name: &ObjectName) -> Result<String, SqlError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_else(|| p.to_string())
        })
        .collect();
    match parts.as_slice() {
        [table] => Ok(table.clone()),
        [db, table] if db == DEFAULT_DATABASE => Ok(table.clone()),
        [catalog, db, table] if catalog == DEFAULT_CATALOG && db == DEFAULT_DATABASE => {
            Ok(table.clone())
        }
        _ => Err(SqlError::Catalog(format!(
            "'{name}' is not in {DEFAULT_CATALOG}.{DEFAULT_DATABASE}, the only catalog and database Weir has"
        ))),
    }
}

impl Catalog {
    pub fn table(&self, name: &str) -> Option<&Arc<CatalogTable>> {
        self.tables.get(name)
    }

    pub fn view(&self, name: &str) -> Option<&Arc<CatalogView>> {
        self.views.get(name)
    }

    pub fn tables(&self) -> impl Iterator<Item = &Arc<CatalogTable>> {
        self.tables.values()
    }

    pub fn views(&self) -> impl Iterator<Item = &Arc<CatalogView>> {
        self.views.values()
    }

    fn check_free(&self, name: &str) -> Result<(), SqlError> {
        if self.tables.contains_key(name) || self.views.contains_key(name) {
            return Err(SqlError::Catalog(format!(
                "a table or view named '{name}' already exists in {DEFAULT_CATALOG}.{DEFAULT_DATABASE}; drop it first or use IF NOT EXISTS"
            )));
        }
        Ok(())
    }

    /// Adds a table; `Ok(false)` when it existed and `if_not_exists` was given.
    pub fn create_table(
        &mut self,
        table: CatalogTable,
        if_not_exists: bool,
    ) -> Result<bool, SqlError> {
        if if_not_exists
            && (self.tables.contains_key(&table.name) || self.views.contains_key(&table.name))
        {
            return Ok(false);
        }
        self.check_free(&table.name)?;
        self.tables.insert(table.name.clone(), Arc::new(table));
        Ok(true)
    }

    pub fn create_view(
        &mut self,
        view: CatalogView,
        if_not_exists: bool,
    ) -> Result<bool, SqlError> {
        if if_not_exists
            && (self.tables.contains_key(&view.name) || self.views.contains_key(&view.name))
        {
            return Ok(false);
        }
        self.check_free(&view.name)?;
        self.views.insert(view.name.clone(), Arc::new(view));
        Ok(true)
    }

    pub fn drop_table(&mut self, name: &str, if_exists: bool) -> Result<(), SqlError> {
        if self.tables.remove(name).is_none() && !if_exists {
            return Err(SqlError::Catalog(self.missing("table", name)));
        }
        Ok(())
    }

    pub fn drop_view(&mut self, name: &str, if_exists: bool) -> Result<(), SqlError> {
        if self.views.remove(name).is_none() && !if_exists {
            return Err(SqlError::Catalog(self.missing("view", name)));
        }
        Ok(())
    }

    /// "table 'x' does not exist", with the names that do.
    pub fn missing(&self, kind: &str, name: &str) -> String {
        let known: Vec<&str> = self
            .tables
            .keys()
            .chain(self.views.keys())
            .map(String::as_str)
            .collect();
        if known.is_empty() {
            format!("{kind} '{name}' does not exist; no tables or views are defined yet")
        } else {
            format!(
                "{kind} '{name}' does not exist; known tables and views: {}",
                known.join(", ")
            )
        }
    }
}
