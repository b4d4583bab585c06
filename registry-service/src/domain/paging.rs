//! Page-number paging, as the public contract has it (`pageNumber`,
//! `pageSize`, `hasPreviousPage`, `hasNextPage`).

use super::FieldViolation;

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;
/// Keeps `OFFSET` bounded: deeper pages are refused rather than scanned.
pub const MAX_PAGE_NUMBER: u32 = 100_000;

/// A page that was asked for: 1-based number and a bounded size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    number: u32,
    size: u32,
}

impl PageRequest {
    /// 0 means "unset" and takes the default (page 1, size 20).
    pub fn parse(number: u32, size: u32) -> Result<Self, FieldViolation> {
        let number = if number == 0 { 1 } else { number };
        let size = if size == 0 { DEFAULT_PAGE_SIZE } else { size };
        if size > MAX_PAGE_SIZE {
            return Err(FieldViolation::new(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        if number > MAX_PAGE_NUMBER {
            return Err(FieldViolation::new(
                "page_number",
                format!("must be between 1 and {MAX_PAGE_NUMBER}"),
            ));
        }
        Ok(Self { number, size })
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.number - 1) * i64::from(self.size)
    }

    /// How many rows to fetch: one more than the page holds, to learn whether
    /// a next page exists without counting.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Cuts the extra probe row off `rows` and describes the page.
    pub fn finish<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let has_next_page = rows.len() > self.size as usize;
        rows.truncate(self.size as usize);
        Page {
            items: rows,
            number: self.number,
            size: self.size,
            has_previous_page: self.number > 1,
            has_next_page,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub number: u32,
    pub size: u32,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let p = PageRequest::parse(0, 0).unwrap();
        assert_eq!((p.number(), p.size(), p.offset()), (1, 20, 0));
        assert_eq!(PageRequest::parse(3, 10).unwrap().offset(), 20);
        assert_eq!(PageRequest::parse(1, 101).unwrap_err().field, "page_size");
        assert_eq!(
            PageRequest::parse(MAX_PAGE_NUMBER + 1, 1)
                .unwrap_err()
                .field,
            "page_number"
        );
    }

    proptest::proptest! {
        /// Any pair of numbers is a page within the bounds or a named
        /// refusal; a page's offset and probe never overflow, and its
        /// flags say what the rows fetched say.
        #[test]
        fn paging_arithmetic_holds_for_any_input(number in proptest::num::u32::ANY, size in proptest::num::u32::ANY, fetched in 0usize..=101) {
            match PageRequest::parse(number, size) {
                Ok(page) => {
                    proptest::prop_assert!((1..=MAX_PAGE_NUMBER).contains(&page.number()));
                    proptest::prop_assert!((1..=MAX_PAGE_SIZE).contains(&page.size()));
                    proptest::prop_assert_eq!(page.offset(), (i64::from(page.number()) - 1) * i64::from(page.size()));
                    proptest::prop_assert_eq!(page.fetch_limit(), i64::from(page.size()) + 1);
                    let rows = fetched.min(page.size() as usize + 1);
                    let done = page.finish(vec![(); rows]);
                    proptest::prop_assert_eq!(done.items.len(), rows.min(page.size() as usize));
                    proptest::prop_assert_eq!(done.has_next_page, rows > page.size() as usize);
                    proptest::prop_assert_eq!(done.has_previous_page, page.number() > 1);
                }
                Err(violation) => {
                    let expected = if size > MAX_PAGE_SIZE { "page_size" } else { "page_number" };
                    proptest::prop_assert_eq!(violation.field, expected);
                    proptest::prop_assert!(size > MAX_PAGE_SIZE || number > MAX_PAGE_NUMBER);
                }
            }
        }
    }

    #[test]
    fn finish_probes_for_a_next_page() {
        let p = PageRequest::parse(2, 2).unwrap();
        let page = p.finish(vec![1, 2, 3]);
        assert_eq!(page.items, vec![1, 2]);
        assert!(page.has_next_page && page.has_previous_page);
        let last = p.finish(vec![1]);
        assert!(!last.has_next_page);
    }
}
