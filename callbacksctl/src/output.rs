//! What a command prints: a table for people, or JSON for scripts
//! (`--json`), from one description of the rows.

use serde_json::{Map, Value};

/// Rows of named columns.
#[derive(Debug, Default)]
pub(crate) struct Table {
    columns: Vec<&'static str>,
    rows: Vec<Vec<Value>>,
    /// A line printed under the table (paging, hints); not in JSON.
    footer: Option<String>,
}

impl Table {
    pub(crate) fn new(columns: &[&'static str]) -> Self {
        Self {
            columns: columns.to_vec(),
            ..Self::default()
        }
    }

    pub(crate) fn row(&mut self, values: Vec<Value>) {
        self.rows.push(values);
    }

    pub(crate) fn footer(mut self, text: impl Into<String>) -> Self {
        self.footer = Some(text.into());
        self
    }

    /// JSON: an array of objects keyed by column name.
    pub(crate) fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let object: Map<String, Value> = self
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(column, value)| ((*column).to_owned(), value.clone()))
                        .collect();
                    Value::Object(object)
                })
                .collect(),
        )
    }

    /// Aligned columns, `-` for empty cells.
    pub(crate) fn to_text(&self) -> String {
        let cell = |value: &Value| match value {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(cell).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |values: Vec<&str>| {
            values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = vec![line(
            self.columns
                .iter()
                .map(|c| c.to_uppercase())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str)
                .collect(),
        )];
        for row in &cells {
            out.push(line(row.iter().map(String::as_str).collect()));
        }
        if self.rows.is_empty() {
            out.push("(none)".to_owned());
        }
        if let Some(footer) = &self.footer {
            out.push(footer.clone());
        }
        out.join("\n")
    }

    pub(crate) fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            println!("{}", self.to_text());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_and_json_come_from_the_same_rows() {
        let mut table = Table::new(&["id", "name", "disabled"]);
        table.row(vec![json!("a1"), json!("Acme"), Value::Null]);
        table.row(vec![json!("b22"), json!("Globex Corporation"), json!(true)]);
        assert_eq!(
            table.to_text(),
            "ID   NAME                DISABLED\na1   Acme                -\nb22  Globex Corporation  true"
        );
        assert_eq!(
            table.to_json(),
            json!([
                {"id": "a1", "name": "Acme", "disabled": null},
                {"id": "b22", "name": "Globex Corporation", "disabled": true}
            ])
        );
        assert!(Table::new(&["x"]).to_text().ends_with("(none)"));
    }
}
