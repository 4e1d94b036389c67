//! Keyset paging shared by every console list: the pager links ("← Newest", "Older →"), the
//! split of a page fetched one row long (to know whether another follows), and the query
//! string of the lists without filters (operations, recovery runs, pauses):
//! `?after=<the previous page's last row>&limit=<rows>`.
//!
//! A page asks for the rows after the last one shown, never for an offset: it does not repeat
//! or skip a row while rows arrive, and a deep page costs what the first one does.

use std::str::FromStr;

use maud::{Markup, html};
use serde::Deserialize;

use super::filters::{limit, set};
use crate::error::ApiError;

/// The query string of an unfiltered list.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PageParams {
    /// The previous page's last row (its id, or the list's own cursor text).
    pub(crate) after: Option<String>,
    /// Rows per page (1-1000, default 50).
    pub(crate) limit: Option<String>,
}

impl PageParams {
    /// The cursor and the rows per page; a bad value is named.
    pub(crate) fn read<T: FromStr>(&self) -> Result<(Option<T>, u32), ApiError> {
        let after = set(&self.after)
            .map(|text| {
                text.parse::<T>().map_err(|_| {
                    ApiError::BadRequest(format!("after {text:?} is not a page cursor"))
                })
            })
            .transpose()?;
        Ok((after, limit(&self.limit)?))
    }

    /// `path` with the rows per page kept and `after` set (or not: the newest page).
    pub(crate) fn link(&self, path: &str, after: Option<&str>) -> String {
        let mut pairs = Vec::new();
        if let Some(after) = after {
            pairs.push(("after", after));
        }
        if let Some(limit) = set(&self.limit) {
            pairs.push(("limit", limit));
        }
        match serde_urlencoded::to_string(&pairs) {
            Ok(query) if !query.is_empty() => format!("{path}?{query}"),
            _ => path.to_owned(),
        }
    }

    /// The pager of a page of this list: `last` is its last row's cursor text.
    pub(crate) fn pager(&self, path: &str, last: Option<String>, more: bool) -> Markup {
        let newest = set(&self.after).map(|_| self.link(path, None));
        let older = last
            .filter(|_| more)
            .map(|last| self.link(path, Some(&last)));
        pager(newest, older)
    }
}

/// The first `shown` of `rows` (fetched with one more), and whether more rows follow.
pub(crate) fn split<T>(mut rows: Vec<T>, shown: u32) -> (Vec<T>, bool) {
    let shown = shown as usize;
    let more = rows.len() > shown;
    rows.truncate(shown);
    (rows, more)
}

/// The pager: a link back to the newest page (when on a later one) and one to the next page
/// (when more rows follow).
pub(crate) fn pager(newest: Option<String>, older: Option<String>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(href) = newest { a href=(href) { "← Newest" } }
            @if let Some(href) = older { a href=(href) rel="next" { "Older →" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_rows_per_page_and_bad_cursors_are_named() {
        let params = PageParams {
            after: Some("7".into()),
            limit: Some("20".into()),
        };
        assert_eq!(params.read::<u32>().ok(), Some((Some(7), 20)));
        assert_eq!(
            params.link("/ui/operations", Some("a b")),
            "/ui/operations?after=a+b&limit=20"
        );
        assert_eq!(
            PageParams::default().link("/ui/operations", None),
            "/ui/operations"
        );
        let bad = PageParams {
            after: Some("x".into()),
            limit: None,
        };
        let err = bad.read::<u32>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("\"x\" is not a page cursor")));
        assert_eq!(split(vec![1, 2, 3], 2), (vec![1, 2], true));
        assert_eq!(split(vec![1, 2], 2), (vec![1, 2], false));
    }
}
